"""What the ``deeplab-build-*`` converters share: argument checks, the common options, the
report. Their flags are in ``deeplab_tf.cli.flags.converters``."""

from __future__ import annotations

import os

from deeplab_tf.cli.flags import export
from deeplab_tf.cli.flags.converters import (NUM_SHARDS, NUM_WORKERS,
                                             OUTPUT_DIR, PROGRESS,
                                             SKIP_INVALID)
from deeplab_tf.errors import UserError


def check_args(argv) -> None:
    if len(argv) > 1:
        raise UserError(f"Unexpected positional arguments: {' '.join(argv[1:])}")


def require(*holders) -> None:
    for holder in holders:
        if holder.value in (None, ""):
            raise UserError(f"--{holder.name} is required")


def common_options(default_num_shards: int) -> dict:
    """Keyword arguments every converter's ``convert`` takes, from the shared flags
    (``--max_image_pixels`` too when given)."""
    require(OUTPUT_DIR)
    num_shards = NUM_SHARDS.value if NUM_SHARDS.value is not None else default_num_shards
    if num_shards < 1:
        raise UserError(f"--num_shards must be >= 1. Received: --num_shards={num_shards}")
    if NUM_WORKERS.value < 1:
        raise UserError(f"--num_workers must be >= 1. Received: --num_workers={NUM_WORKERS.value}")
    options = dict(num_shards=num_shards, num_workers=NUM_WORKERS.value,
                   skip_invalid=SKIP_INVALID.value, show_progress=PROGRESS.value)
    if export.MAX_IMAGE_PIXELS.present:
        options["max_image_pixels"] = export.MAX_IMAGE_PIXELS.value
    return options


def report(manifest: dict, output_dir: str) -> None:
    """Prints what was written (one line per split) to stdout."""
    for split, entry in manifest["splits"].items():
        skipped = len(entry.get("skipped", ()))
        extra = f", {skipped} skipped" if skipped else ""
        print(f"{split}: {entry['num_examples']} examples in {entry['num_shards']} shards{extra}")
    print(f"Wrote {manifest['dataset']} ({manifest['num_classes']} classes, ignore label "
          f"{manifest['ignore_label']}) to {os.path.abspath(output_dir)}")
