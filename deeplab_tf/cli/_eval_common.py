"""What deeplab-eval and deeplab-vis share: which model, which checkpoints, the predictor.

Their flags are in ``deeplab_tf.cli.flags`` (groups ``inference``, ``eval``, ``vis``).

Which model: as in the original, the model flags describe the network. A training run's
``config.json`` (written by deeplab-train / deeplab-convert-checkpoint beside the checkpoints)
is used instead when no model flag is given explicitly (on the command line or in a
flagfile), so ``deeplab-eval --checkpoint_dir=RUN --dataset_dir=...`` is enough. The binary
says which it used.
"""

from __future__ import annotations

import json
import os
from typing import Iterator, Optional, Tuple

from absl import logging

from deeplab_tf.cli._common import UserError
from deeplab_tf.cli.flags import inference, model
from deeplab_tf.config import EvalConfig, ModelConfig

CONFIG_JSON = "config.json"
# ModelConfig fields that do not change inference, or that the checkpoint itself decides
# (its quantization ranges): not worth a note when they differ.
_TRAINING_ONLY_FIELDS = ("weight_decay", "sync_batch_norm", "fine_tune_batch_norm",
                         "quantization")
_CHECKPOINT_DIR = inference.CHECKPOINT_DIR
_CHECKPOINT_PATH = inference.CHECKPOINT_PATH


def check_no_arguments(argv):
    if len(argv) > 1:
        raise UserError(f"Unexpected arguments: {' '.join(argv[1:])}")


# --- checkpoints ---------------------------------------------------------------------------

def checkpoint_dir() -> str:
    """The directory holding the checkpoint(s) (and maybe config.json); checked to exist."""
    if _CHECKPOINT_PATH.value:
        path = os.path.abspath(_CHECKPOINT_PATH.value)
        return path if os.path.isdir(path) else os.path.dirname(path)
    if not _CHECKPOINT_DIR.value:
        raise UserError("--checkpoint_dir (or --checkpoint_path) is required")
    if not os.path.isdir(_CHECKPOINT_DIR.value):
        raise UserError(f"--checkpoint_dir={_CHECKPOINT_DIR.value} is not a directory")
    return _CHECKPOINT_DIR.value


def checkpoints(max_count: int, interval_secs: float) -> Iterator[str]:
    """The checkpoints to process: --checkpoint_path once, else those of --checkpoint_dir.

    With ``max_count == 1`` the directory's latest checkpoint is used at once (an error if it
    has none); otherwise each new checkpoint as it appears (``max_count <= 0``: forever).
    """
    from deeplab_tf.checkpoints.paths import resolve_checkpoint_path
    from deeplab_tf.checkpoints.loading import latest_checkpoint
    from deeplab_tf.evaluation.evaluator import checkpoints_iterator

    if _CHECKPOINT_PATH.value:
        path = resolve_checkpoint_path(_CHECKPOINT_PATH.value)
        if not os.path.exists(path + ".index") and not os.path.isdir(path):
            raise UserError(f"--checkpoint_path={path}: no checkpoint there ({path}.index missing)")
        yield path
        return
    directory = checkpoint_dir()
    if max_count == 1 and latest_checkpoint(directory) is None:
        raise UserError(f"No checkpoint in --checkpoint_dir={directory}")
    if max_count != 1:
        print(f"Evaluating each new checkpoint in {directory} "
              f"({'until interrupted' if max_count <= 0 else f'{max_count} in all'}).",
              flush=True)
    yield from checkpoints_iterator(directory, latest_checkpoint, max_count=max_count,
                                    interval_secs=interval_secs)


def checkpoint_step(path: str) -> Optional[int]:
    """The training step of a checkpoint: its ``step`` / ``global_step`` variable, else the
    number after the last '-' of its name; None if neither exists."""
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        for key in ("step/.ATTRIBUTES/VARIABLE_VALUE", "global_step"):
            if key in shapes:
                return int(reader.get_tensor(key))
    except (tf.errors.OpError, ValueError):
        pass
    suffix = os.path.basename(path).rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None


# --- the model -----------------------------------------------------------------------------

def model_config(num_classes: int, directory: Optional[str]) -> Tuple[ModelConfig, str]:
    """The ModelConfig to evaluate and a line saying where it came from.

    ``directory/config.json`` (a training run's) is used when no model flag was given
    explicitly; otherwise the model flags, as in the original. Either way the class count
    must match the dataset's.
    """
    path = os.path.join(directory, CONFIG_JSON) if directory else None
    explicit = model.explicit()
    run_config = None
    if path and os.path.isfile(path):
        try:
            with open(path) as f:
                run_config = ModelConfig.from_dict(json.load(f)["model"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise UserError(f"Cannot read the model config of {path}: {error}") from None
    if run_config is not None and not explicit:
        config, source = run_config, f"Model: {path} (no model flags given)."
    else:
        config = model.model_config(num_classes=num_classes)
        source = "Model: from the model flags."
        if run_config is not None:
            differ = sorted(k for k, v in config.to_dict().items()
                            if k not in _TRAINING_ONLY_FIELDS and run_config.to_dict().get(k) != v)
            if differ:
                source += (f" Note: {path} differs in {', '.join(differ)}; "
                           "give no model flags to use it.")
    if config.num_classes != num_classes:
        raise UserError(
            f"The model has {config.num_classes} classes but the dataset has {num_classes} "
            "(check --dataset / --num_classes)")
    return config, source


def _load(model_, path: str, model_config: ModelConfig) -> None:
    """Loads every model variable from ``path`` (the one inference loading rule)."""
    from deeplab_tf.checkpoints.strict import load_for_inference

    logging.info("%s", load_for_inference(model_, path, model_config).summary())


def _tf_predict_fn(model_, model_config: ModelConfig, eval_config: EvalConfig):
    """images float32 [B, H, W, 3] -> labels int32 [B, H, W] through the one inference path
    (``inference.predict`` with an ``InferenceSpec``)."""
    from deeplab_tf import inference as inference_lib

    spec = inference_lib.InferenceSpec.from_configs(model_config, eval_config)
    return inference_lib.predict_function(
        inference_lib.prepare_model(model_, spec, model_config), spec)


def _openvino_predict_fn(model_, model_config: ModelConfig, eval_config: EvalConfig):
    try:
        from deeplab_tf.inference import InferenceSpec
        from deeplab_tf.export.openvino import OpenVINOPredictor
    except ImportError as error:
        raise UserError(f"--inference_backend=openvino is not available here ({error}); use "
                        "--inference_backend=tf") from None
    predictor = OpenVINOPredictor(model_, model_config,
                                  InferenceSpec.from_configs(model_config, eval_config))
    return lambda images: predictor.predict(images)["labels"]


class Predictor:
    """The model a run evaluates, loaded checkpoint by checkpoint.

    ``load(path)`` builds the model of ``model_config`` (fresh each time: folding batch norm
    changes it), loads ``path`` and returns ``predict``: float32 images [B, H, W, 3] ->
    int32 labels [B, H, W], on ``eval_config.inference_backend``. A checkpoint that holds
    quantization ranges (or ``requested_quantization``, --quantize_delay_step >= 0) gets the
    quantized evaluation graph (``checkpoints.quantization.config_for_checkpoint``).
    """

    def __init__(self, model_config: ModelConfig, eval_config: EvalConfig,
                 requested_quantization: Optional[str] = None):
        from deeplab_tf.modeling.backbones import mean_pixel

        self.model_config = model_config
        self.eval_config = eval_config
        self.requested_quantization = requested_quantization
        self.pad_value = mean_pixel(model_config.model_variant)
        self._said = None

    def load(self, path: str):
        from deeplab_tf.checkpoints.quantization import config_for_checkpoint
        from deeplab_tf.model import build_model

        config = config_for_checkpoint(self.model_config, path, self.requested_quantization)
        if config.quantization and self._said != config.quantization:
            print(f"Quantized evaluation graph ({config.quantization} weight ranges).",
                  flush=True)
            self._said = config.quantization
        model_ = build_model(config)
        _load(model_, path, config)
        if self.eval_config.inference_backend == "openvino":
            return _openvino_predict_fn(model_, config, self.eval_config)
        return _tf_predict_fn(model_, config, self.eval_config)


def build_predictor(num_classes: int, directory: Optional[str], eval_config: EvalConfig):
    """A ``Predictor`` of the model to evaluate (where it came from is said on stdout)."""
    from deeplab_tf.cli.flags import quantize

    config, source = model_config(num_classes, directory)
    print(source, flush=True)
    return Predictor(config, eval_config, quantize.requested_quantization())
