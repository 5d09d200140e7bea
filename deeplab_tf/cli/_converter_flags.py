"""Flags shared by the ``deeplab-build-*`` dataset converters, and their common steps.

Importing this module defines the flags (absl flags are global). ``output_dir``,
``num_workers`` and the folder converter's generic names are defined with
``allow_override=True``: other deeplab binaries may define the same names with compatible
types, and tests import several binaries into one process.
"""

from __future__ import annotations

import os

from absl import flags

from deeplab_tf.cli._common import UserError

OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "Folder for the TFRecord shards and manifest.json (created if needed).",
    allow_override=True)
NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", None, "Shards per split; default: the original's count for the dataset.")
NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", min(os.cpu_count() or 1, 8),
    "Worker processes converting in parallel (each writes whole shards); 1: in-process.",
    allow_override=True)
SKIP_INVALID = flags.DEFINE_boolean(
    "skip_invalid", False,
    "Leave out examples whose image or label is invalid (listed in manifest.json) instead of "
    "stopping with an error.")
PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar on stderr.")


def check_args(argv) -> None:
    if len(argv) > 1:
        raise UserError(f"Unexpected positional arguments: {' '.join(argv[1:])}")


def require(*holders) -> None:
    for holder in holders:
        if holder.value in (None, ""):
            raise UserError(f"--{holder.name} is required")


def common_options(default_num_shards: int) -> dict:
    """Keyword arguments every converter's ``convert`` takes, from the shared flags."""
    require(OUTPUT_DIR)
    num_shards = NUM_SHARDS.value if NUM_SHARDS.value is not None else default_num_shards
    if num_shards < 1:
        raise UserError(f"--num_shards must be >= 1. Received: --num_shards={num_shards}")
    if NUM_WORKERS.value < 1:
        raise UserError(f"--num_workers must be >= 1. Received: --num_workers={NUM_WORKERS.value}")
    return dict(num_shards=num_shards, num_workers=NUM_WORKERS.value,
                skip_invalid=SKIP_INVALID.value, show_progress=PROGRESS.value)


def report(manifest: dict, output_dir: str) -> None:
    """Prints what was written (one line per split) to stdout."""
    for split, entry in manifest["splits"].items():
        skipped = len(entry.get("skipped", ()))
        extra = f", {skipped} skipped" if skipped else ""
        print(f"{split}: {entry['num_examples']} examples in {entry['num_shards']} shards{extra}")
    print(f"Wrote {manifest['dataset']} ({manifest['num_classes']} classes, ignore label "
          f"{manifest['ignore_label']}) to {os.path.abspath(output_dir)}")
