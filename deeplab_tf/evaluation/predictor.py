"""The model that eval, vis and export run, loaded from a checkpoint by the one inference rule,
and the backend that computes its predictions (TensorFlow or OpenVINO).

``load_model(resolved, checkpoint)`` builds the ``ResolvedModel``'s network
(``checkpoints.run_dir.resolve_model_config``) and loads every variable with
``checkpoints.strict.load_for_inference``; when the checkpoint does not fit, the error also
names the ModelConfig fields where the flags overrode the run's config.json.
``Predictor.load(path)`` gives deeplab-eval / deeplab-vis their ``predict``: float32 images
[B, H, W, 3] -> int32 labels [B, H, W], on ``eval_config.inference_backend``. A checkpoint
that holds quantization ranges (or a requested quantization: --quantize_delay_step >= 0)
gets the quantized evaluation graph (``checkpoints.quantization.config_for_checkpoint``).
"""

from __future__ import annotations

from absl import logging

from deeplab_tf import inference
from deeplab_tf.checkpoints.paths import CheckpointError
from deeplab_tf.checkpoints.quantization import config_for_checkpoint
from deeplab_tf.checkpoints.run_dir import ResolvedModel
from deeplab_tf.checkpoints.strict import load_for_inference
from deeplab_tf.config import EvalConfig, ModelConfig
from deeplab_tf.errors import UserError
from deeplab_tf.model import build_model
from deeplab_tf.modeling.backbones import mean_pixel


def load_model(resolved: ResolvedModel, checkpoint: str, config=None):
    """(model, LoadReport): the network of ``config`` (default ``resolved.config``) with every
    variable loaded from ``checkpoint``.

    Raises:
        CheckpointError: the checkpoint does not fit the model (naming the variables, the
            flag to set and, where the flags overrode the run's config, those fields).
    """
    config = config or resolved.config
    model = build_model(config)
    try:
        report = load_for_inference(model, checkpoint, config)
    except CheckpointError as error:
        explanation = resolved.explain_mismatch()
        if not explanation:
            raise
        raise CheckpointError(f"{error} Note: {explanation}.") from None
    return model, report


def _tf_predict_fn(model, model_config: ModelConfig, spec: inference.InferenceSpec):
    return inference.predict_function(inference.prepare_model(model, spec, model_config), spec)


def _openvino_predict_fn(model, model_config: ModelConfig, spec: inference.InferenceSpec):
    try:
        from deeplab_tf.export.openvino import OpenVINOPredictor
    except ImportError as error:
        raise UserError(f"--inference_backend=openvino is not available here ({error}); use "
                        "--inference_backend=tf") from None
    predictor = OpenVINOPredictor(model, model_config, spec)
    return lambda images: predictor.predict(images)["labels"]


class Predictor:
    """The model a run evaluates, loaded checkpoint by checkpoint.

    Args:
        resolved: ResolvedModel. The ModelConfig (and where it came from).
        eval_config: EvalConfig. Scales, flip, padding, backend.
        requested_quantization: None, or the quantization asked for (--quantize_delay_step
            >= 0 with --weight_quantization) when a checkpoint holds no ranges.
    """

    def __init__(self, resolved: ResolvedModel, eval_config: EvalConfig,
                 requested_quantization=None):
        self.resolved = resolved
        self.model_config = resolved.config
        self.eval_config = eval_config
        self.requested_quantization = requested_quantization
        self.pad_value = mean_pixel(resolved.config.model_variant)
        # --inference_precision resolved once (``auto``: from the hardware), said by the CLI;
        # its ``pixels`` is what ``max_image_pixels`` limits.
        self.spec = inference.InferenceSpec.from_configs(resolved.config, eval_config)
        self._said = None

    def load(self, path: str):
        """``predict`` of the checkpoint ``path``: a fresh model each time (folding batch norm
        changes it)."""
        config = config_for_checkpoint(self.model_config, path, self.requested_quantization)
        if config.quantization and self._said != config.quantization:
            print(f"Quantized evaluation graph ({config.quantization} weight ranges).",
                  flush=True)
            self._said = config.quantization
        model, report = load_model(self.resolved, path, config)
        logging.info("%s", report.summary())
        if self.eval_config.inference_backend == "openvino":
            return _openvino_predict_fn(model, config, self.spec)
        return _tf_predict_fn(model, config, self.spec)
