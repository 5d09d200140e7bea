"""``build_model``: a DeepLabv3 / DeepLabv3+ Keras model from a ``ModelConfig``; ``model_stats``.

Model contract: input float32 RGB in [0, 255], NHWC, any height and width; the
backbone's normalisation is applied inside the model. Output: logits at the model's native
output stride (4 with the usual decoder, else ``output_stride``). Use
``deeplab_tf.inference`` to upsample them to the input size and take the argmax.

Image pyramid (``ModelConfig.image_pyramid``, ``deeplab_tf.modeling.pyramid``): the output is
the merged logits, on the logits grid of the largest scale (at least 1); evaluation,
visualisation and every export use them. Training needs each scale's logits too:
``DeepLab.logits_by_scale(images, training=True)`` returns ``{"logits_<s>": ...,
"merged_logits": ...}`` (a second functional view of the same layers), and both
``DeepLab.fit`` (``train_step``) and deeplab-train's loop sum the loss over all of them, as the
original's training. Without a pyramid it returns ``{"merged_logits": model(images)}``.

Example:

>>> from deeplab_tf import ModelConfig, build_model
>>> config = ModelConfig(model_variant="mobilenet_v2", num_classes=3, output_stride=16)
>>> model = build_model(config)
>>> model(np.zeros((1, 65, 65, 3), "float32")).shape
TensorShape([1, 5, 5, 3])
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from deeplab_tf import inference, presets
from deeplab_tf.config import EvalConfig, ModelConfig
from deeplab_tf.losses import SegmentationLoss
from deeplab_tf.modeling.layers.drop_path import bind_drop_path
from deeplab_tf.modeling.layers.quantize import set_quantization_active
from deeplab_tf.modeling.madds import count_madds
from deeplab_tf.modeling.network import build_network_outputs
from deeplab_tf.modeling.pyramid import MERGED_LOGITS
from deeplab_tf.modeling.scopes import gradient_multipliers
from deeplab_tf.segmenter import DeepLabSegmenter


@keras.saving.register_keras_serializable(package="deeplab_tf")
class DeepLab(keras.Model):
    """DeepLabv3 / DeepLabv3+ (Chen et al., 2017 and 2018) as a Keras functional model.

    Built from a ``ModelConfig``: normalisation of plain pixels, the backbone, ASPP, the
    optional decoder and the logits, with the original's layer and variable names (so
    original checkpoints load by name). ``get_config`` returns the ModelConfig's fields, so
    ``model.save("m.keras")`` / ``keras.saving.load_model("m.keras")`` round-trip the
    architecture and weights without a side file.

    Training with ``compile`` / ``fit``: ``compile`` takes the usual arguments plus the
    original's gradient multipliers (see ``compile``); use ``deeplab_tf.losses.
    SegmentationLoss``, ``deeplab_tf.metrics.MeanIoU`` and ``deeplab_tf.schedules.
    PolyLearningRate``. Weight decay is ``ModelConfig.weight_decay`` (slim's L2, added to
    the loss by Keras as ``model.losses``). A quantization-aware model
    (``ModelConfig.quantization``) trains quantized, from the ``quantize_delay_step`` given
    to ``compile`` on (as deeplab-train's flag), and predicts quantized.

    Args:
        config: ModelConfig (or a dict of its fields).
        input_shape: (height, width, 3). Height and width may be None (dynamic).
        name: str. Model name; defaults to ``deeplab_<model_variant>``.

    Example:

    >>> model = DeepLab(ModelConfig(model_variant="mobilenet_v2", depth_multiplier=0.25,
    ...                             num_classes=3, decoder_output_stride=(4,)))
    >>> model.predict_labels(np.zeros((1, 65, 65, 3), "float32")).shape
    (1, 65, 65)
    """

    def __init__(self, config, input_shape=(None, None, 3), name=None, **kwargs):
        if isinstance(config, dict):
            config = ModelConfig.from_dict(config)
        if not isinstance(config, ModelConfig):
            raise TypeError(
                f"config must be a ModelConfig. Received: {type(config).__name__}")
        # === Layers and the functional graph ===
        images, outputs = build_network_outputs(config, input_shape)
        super().__init__(inputs=images, outputs=outputs[MERGED_LOGITS],
                         name=name or f"deeplab_{config.model_variant}", **kwargs)
        # Each pyramid scale's logits: a second functional model over the same layers. Set
        # past Keras' and TensorFlow's attribute tracking: its weights are this model's, and
        # it must not appear in checkpoints as a second path to them.
        by_scale = keras.Model(images, outputs) if len(outputs) > 1 else None
        object.__setattr__(self, "_logits_by_scale_model", by_scale)
        # === Config ===
        self._model_config = config
        self._input_shape_arg = tuple(input_shape)
        self._compile_options = {}
        self._multiplier_by_path = None

    @property
    def config(self) -> ModelConfig:
        """The ModelConfig the model was built from."""
        return self._model_config

    def get_config(self):
        return {"config": self._model_config.to_dict(),
                "input_shape": list(self._input_shape_arg), "name": self.name,
                "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(ModelConfig.from_dict(config.pop("config")), **config)

    # ----------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, checkpoint=None, **overrides) -> "DeepLab":
        """A model of the original's model zoo; see ``deeplab_tf.presets.from_preset``."""
        return presets.from_preset(cls, name, checkpoint=checkpoint, **overrides)

    # ----------------------------------------------------------------- inference
    def predict_labels(self, images, scales=(1.0,), add_flipped_images=False,
                       batch_size: int = 8) -> np.ndarray:
        """int32 [B, H, W] labels at the input size, through the one inference path.

        ``deeplab_tf.inference.predict`` with the ``InferenceSpec`` of this
        model's config: images padded to ``k * output_stride + 1`` with the backbone's mean
        pixel, predicted (multi-scale and left-right flip averaged if asked) and cropped back,
        as deeplab-eval and the exports compute them. The model runs as it is (batch norm not
        folded: no copy is built, and later training shows at once).

        Args:
            images: float32 or uint8 RGB [B, H, W, 3] (or one image [H, W, 3]), plain pixels.
            scales: sequence of float. Input scales (the original's ``--eval_scales``).
            add_flipped_images: bool. Also average left-right flipped inputs.
            batch_size: int. Images per forward pass.
        """
        images = np.asarray(images)
        single = images.ndim == 3
        if single:
            images = images[np.newaxis]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "images must be RGB [B, H, W, 3] or [H, W, 3]. Received: shape="
                f"{tuple(images.shape)}")
        spec = inference.InferenceSpec.from_configs(self._model_config, EvalConfig(
            eval_scales=tuple(scales), add_flipped_images=bool(add_flipped_images),
            eval_crop_size=None, fold_batch_norm=False, inference_precision="float32"))
        outputs = [inference.predict(self, images[start:start + int(batch_size)], spec)
                   [inference.LABELS].numpy()
                   for start in range(0, len(images), int(batch_size))]
        labels = np.concatenate(outputs) if outputs else np.zeros((0,) + images.shape[1:3],
                                                                    np.int32)
        return labels[0] if single else labels

    def segmenter(self, output_type: str = "labels"):
        """A ``DeepLabSegmenter`` around this model (shared weights): ``predict`` gives
        input-size ``"labels"``, ``"probabilities"`` or ``"logits"``."""
        return DeepLabSegmenter(self, output_type=output_type)

    # ----------------------------------------------------------------- training
    def logits_by_scale(self, images, training=False) -> dict:
        """``{"logits_<s>": ..., "merged_logits": ...}``: the logits of every image pyramid
        scale (resized to the output's grid) and the merged ones, which training's loss sums
        over; ``{"merged_logits": self(images)}`` without a pyramid."""
        if self._logits_by_scale_model is None:
            return {MERGED_LOGITS: self(images, training=training)}
        return dict(self._logits_by_scale_model(images, training=training))

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, *,
                last_layer_gradient_multiplier: float = 1.0,
                last_layers_contain_logits_only: bool = False,
                gradient_multipliers: bool = True, drop_path_total_steps=None,
                quantize_delay_step: int = 0, **kwargs):
        """``keras.Model.compile`` plus the original's gradient multipliers.

        Args:
            optimizer, loss, metrics, **kwargs: as ``keras.Model.compile``.
            last_layer_gradient_multiplier: float. Gradient multiplier of the last layers
                (logits, plus ASPP and decoder unless ``last_layers_contain_logits_only``),
                as the original's flag.
            last_layers_contain_logits_only: bool. Only the logits are "last layers".
            gradient_multipliers: bool. Apply the original's multipliers (which also double
                every bias gradient, as the original's trainer does). False: plain Keras.
            drop_path_total_steps: int or None. NAS with ``drop_path_keep_prob < 1``: the
                number of training steps over which drop path anneals (the original's
                ``training_number_of_steps``); the step is the optimizer's ``iterations``.
            quantize_delay_step: int. A quantization-aware model: ``fit`` trains the float
                network (ranges tracked) up to step N - 1 and quantized from the N-th step
                (``optimizer.iterations + 1 >= N``, checked between executions, so with
                ``steps_per_execution > 1`` at the next execution), as deeplab-train's flag.
        """
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        self._compile_options = {
            "last_layer_gradient_multiplier": float(last_layer_gradient_multiplier),
            "last_layers_contain_logits_only": bool(last_layers_contain_logits_only),
            "gradient_multipliers": bool(gradient_multipliers),
            "quantize_delay_step": int(quantize_delay_step)}
        self._multiplier_by_path = None
        for item in tf.nest.flatten(loss):
            if isinstance(item, SegmentationLoss):
                item.bind_step(self.optimizer.iterations)
        if drop_path_total_steps is not None:
            bind_drop_path(self, self.optimizer.iterations, drop_path_total_steps)
            self._compile_options["drop_path_total_steps"] = int(drop_path_total_steps)

    def get_compile_config(self):
        config = super().get_compile_config()
        if config is not None:
            config = dict(config, **self._compile_options)
        return config

    def compile_from_config(self, config):
        """Recompiles a loaded model (optimizer, loss, metrics and the options above)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _multipliers(self):
        if self._multiplier_by_path is None:
            options = self._compile_options or {"gradient_multipliers": False}
            values = [1.0] * len(self.trainable_variables)
            if options["gradient_multipliers"]:
                values = gradient_multipliers(
                    self, options["last_layer_gradient_multiplier"],
                    options["last_layers_contain_logits_only"])
            self._multiplier_by_path = {
                v.path: m for v, m in zip(self.trainable_variables, values)}
        return [self._multiplier_by_path.get(v.path, 1.0) for v in self.trainable_variables]

    def make_train_function(self, force=False):
        """Keras' train function; for a quantization-aware model, wrapped so that the fake
        quantization switches on at ``quantize_delay_step`` (the traced step is rebuilt)."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        delay = self._compile_options.get("quantize_delay_step", 0)
        if self._model_config.quantization is None:
            return self.train_function
        if delay <= 1:
            set_quantization_active(self, True)
            return self.train_function
        traced = [self.train_function]

        def train_function(iterator):
            active = int(self.optimizer.iterations.numpy()) + 1 >= delay
            if set_quantization_active(self, active):
                super(DeepLab, self).make_train_function(force=True)
                traced[0] = self.train_function
                self.train_function = train_function
            return traced[0](iterator)

        set_quantization_active(self, False)
        self.train_function = train_function
        return train_function

    def train_step(self, data):
        """Keras' TensorFlow train step, with the gradient multipliers applied and, with an
        image pyramid, the compiled loss of each scale's logits added (``logits_by_scale``)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            scale_logits = self.logits_by_scale(x, training=True)
            y_pred = scale_logits.pop(MERGED_LOGITS)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                                     training=True)
            # The image pyramid's scales add their own loss terms (the compiled loss only: the
            # weight decay counts once), as the original's training.
            if self._compile_loss is not None:
                for logits in scale_logits.values():
                    loss = loss + self._compile_loss(y, logits, sample_weight)
            self._loss_tracker.update_state(
                _unscale_for_distribution(loss), sample_weight=tf.shape(x)[0])
            loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(loss, variables)
        updates = []
        for grad, multiplier, var in zip(gradients, self._multipliers(), variables):
            if grad is not None:
                updates.append((grad * multiplier if multiplier != 1.0 else grad, var))
        self.optimizer.apply_gradients(updates)
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def logits_by_scale(model, images, training=False) -> dict:
    """``model.logits_by_scale`` of a ``DeepLab``; ``{"merged_logits": model(images)}`` for any
    other callable images -> logits (e.g. a ``model_fn``'s plain Keras model)."""
    if isinstance(model, DeepLab):
        return model.logits_by_scale(images, training=training)
    return {MERGED_LOGITS: model(images, training=training)}


def _unscale_for_distribution(loss):
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss * float(replicas) if replicas > 1 else loss


def build_model(config: ModelConfig, input_shape=(None, None, 3), name=None) -> DeepLab:
    """Builds the DeepLab model described by ``config`` (a ``DeepLab``, a keras.Model).

    Args:
        config: ModelConfig.
        input_shape: (height, width, 3). Height and width may be None (dynamic).
        name: str. Model name; defaults to ``deeplab_<model_variant>``.

    Returns:
        A ``DeepLab`` mapping images [B, H, W, 3] to logits.
    """
    if not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig. Received: {type(config).__name__}")
    return DeepLab(config, input_shape=input_shape, name=name)


def model_stats(config: ModelConfig, height: int, width: int) -> dict:
    """``{"params": int, "madds": int}`` for ``config`` at ``height`` x ``width``.

    ``params`` counts every variable, batch-norm moving statistics included (as
    ``tf.train.list_variables`` on an original checkpoint would, less ``global_step``);
    ``madds`` is ``count_madds`` of one image.
    """
    model = build_model(config)
    return {"params": int(model.count_params()), "madds": count_madds(model, height, width)}


# Names this module re-exported before the layout of 0.2 (documented as
# ``deeplab_tf.model.fold_batch_norm``): kept for one release, with a deprecation warning.
_MOVED = {"fold_batch_norm": "deeplab_tf.modeling.layers.original_layer",
          "iter_original_layers": "deeplab_tf.modeling.layers.original_layer",
          "mean_pixel": "deeplab_tf.modeling.backbones",
          "count_madds": "deeplab_tf.modeling.madds"}


def __getattr__(name):
    if name in _MOVED:
        import importlib
        import warnings

        warnings.warn(f"deeplab_tf.model.{name} moved to {_MOVED[name]}.{name}; this alias "
                      "will be removed in the next release", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'deeplab_tf.model' has no attribute {name!r}")
