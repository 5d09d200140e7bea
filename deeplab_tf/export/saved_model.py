"""SavedModel export in TF Serving's layout: ``export_dir/model_name/<version>/``.

The SavedModel holds the signatures of ``serving_signatures.ServingModule`` (decoding,
padding, multi-scale + flip inference and the argmax all in the graph; by default the folded
model frozen into it, in ``ExportConfig.inference_precision``) and, under
``assets.extra/deeplab_export.json``, the model and export configs and the precision the
graph computes in, with the reason.

Versions: a new export gets ``1 + the largest existing integer version`` (or
``ExportConfig.export_version``); it is written to a hidden temporary folder beside the
version folders (TF Serving ignores names that are not integers) and renamed into place only
when complete, so TF Serving never sees a partial model, and an existing version folder is
never overwritten.

Example:

>>> path = export_saved_model(model, model_config, ExportConfig(inference_scales=(0.5, 1.0)),
...                           "exports")
>>> path
'exports/deeplab/1'
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile

import tensorflow as tf

from deeplab_tf.config import ExportConfig, ModelConfig
from deeplab_tf.export.destination import ExportResult, check_writable
from deeplab_tf.export.errors import ExportError
from deeplab_tf.export.serving_signatures import ServingModule
from deeplab_tf.fileio import atomic_write_text
from deeplab_tf.inference import InferenceSpec, prepare_model

METADATA_FILE = "deeplab_export.json"


def directory_size(path: str) -> int:
    """Bytes of the files under ``path``."""
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def existing_versions(model_dir: str) -> list:
    """The integer version folders of ``model_dir``, sorted (empty if it does not exist)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isdigit() and os.path.isdir(os.path.join(model_dir, name)))


def next_version(model_dir: str) -> int:
    """1 + the largest integer version folder in ``model_dir`` (1 if there is none)."""
    versions = existing_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _publish(staging: str, model_dir: str, version) -> str:
    """Renames ``staging`` to ``model_dir/<version>``; never replaces an existing folder.

    ``version=None`` takes the next free version, moving on if another export takes it first.
    """
    number = next_version(model_dir) if version is None else version
    while True:
        target = os.path.join(model_dir, str(number))
        if not os.path.exists(target):
            try:
                os.rename(staging, target)  # Fails on a non-empty existing folder.
                return target
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if version is not None:
            raise ExportError(f"Version {number} already exists: {target} (versions are "
                              "never overwritten; choose another --export_version)")
        number = max(number + 1, next_version(model_dir))


def export_saved_model(model, model_config: ModelConfig, export_config: ExportConfig,
                       export_dir: str, metadata: dict = None) -> str:
    """Writes ``model`` as a new version of ``export_dir/<model_name>``.

    Args:
        model: a DeepLab Keras model with its weights loaded (float32).
        model_config: ModelConfig of ``model`` (its output stride and mean pixel set the
            padding, as in deeplab-eval).
        export_config: ExportConfig. Model name, version, scales, flip, probabilities.
        export_dir: str. The model base path's parent (TF Serving's ``--model_base_path`` is
            ``export_dir/model_name``).
        metadata: dict or None. Extra facts recorded in ``assets.extra/deeplab_export.json``
            (e.g. the checkpoint).

    Returns:
        The path of the new version folder.

    Raises:
        ExportError: the destination is not writable or the version exists.
    """
    model_dir = os.path.join(export_dir, export_config.model_name)
    check_writable(model_dir)
    if export_config.export_version is not None:
        target = os.path.join(model_dir, str(export_config.export_version))
        if os.path.exists(target):
            raise ExportError(f"Version {export_config.export_version} already exists: "
                              f"{target} (versions are never overwritten)")
    spec = InferenceSpec.from_export_config(model_config, export_config)
    prepared = prepare_model(model, spec, model_config)
    module = ServingModule(prepared, spec,
                           export_probabilities=export_config.export_probabilities,
                           max_image_pixels=export_config.max_image_pixels,
                           track_variables=prepared is model)
    os.makedirs(model_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".tmp-export-", dir=model_dir)
    os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide the model from a serving user.
    try:
        tf.saved_model.save(module, staging, signatures=module.signatures())
        extra = os.path.join(staging, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        atomic_write_text(os.path.join(extra, METADATA_FILE), json.dumps(
            {"model": model_config.to_dict(), "export": export_config.to_dict(),
             "precision": spec.precision, "precision_reason": spec.precision_reason,
             **(metadata or {})}, indent=2, sort_keys=True))
        return _publish(staging, model_dir, export_config.export_version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def check_destination(export_config: ExportConfig, export_dir: str, overwrite: bool = False):
    """Fails before any work when the new version cannot be written (``overwrite`` does not
    apply: versions are never overwritten)."""
    model_dir = os.path.join(export_dir, export_config.model_name)
    check_writable(model_dir)
    version = export_config.export_version
    if version is not None and os.path.exists(os.path.join(model_dir, str(version))):
        raise ExportError(f"Version {version} already exists in {model_dir} (versions are "
                          "never overwritten; choose another --export_version)")


def export(model, model_config: ModelConfig, export_config: ExportConfig, export_dir: str, *,
           metadata: dict = None, overwrite: bool = False) -> ExportResult:
    """The registry's entry point (``deeplab_tf.export.EXPORTERS``): ``export_saved_model``."""
    path = export_saved_model(model, model_config, export_config, export_dir, metadata)
    spec = InferenceSpec.from_export_config(model_config, export_config)
    return ExportResult(path, (
        f"Exported SavedModel version {os.path.basename(path)} to {path} "
        f"({directory_size(path) / 1e6:.2f} MB); signatures serving_default (encoded images), "
        f"predict_images (uint8 pixels); scales {list(export_config.inference_scales)}"
        f"{', flipped' if export_config.add_flipped_images else ''}; computes in "
        f"{spec.precision} ({spec.precision_reason})."))
