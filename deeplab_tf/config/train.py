"""``TrainConfig``: how deeplab-train optimises a model."""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from deeplab_tf.config.base import ConfigMixin
from deeplab_tf.errors import ConfigError

LEARNING_POLICIES = ("poly", "step", "cosine")
OPTIMIZERS = ("momentum", "adam")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "parameter_server", "tpu")
MIXED_PRECISION = ("float32", "bfloat16", "float16", "auto")


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    """How ``deeplab-train`` optimises a model; defaults are the original train.py's.

    Model options that training toggles (``weight_decay``, ``fine_tune_batch_norm``,
    ``sync_batch_norm``) live in ``ModelConfig``; the data and its augmentation in
    ``DataConfig``.

    Args:
        train_batch_size: int. Global batch size, split evenly over the replicas.
        training_number_of_steps: int. Number of optimiser steps.
        learning_policy: str. ``"poly"``, ``"step"`` or ``"cosine"`` decay of the base rate.
        base_learning_rate: float. Base learning rate of momentum SGD.
        learning_rate_decay_step: int. ``"step"`` policy: decay every this many steps.
        learning_rate_decay_factor: float. ``"step"`` policy: decay factor.
        learning_power: float. ``"poly"`` policy: power.
        decay_steps: float. ``"poly"`` policy: steps after the slow start over which the rate
            decays to ``end_learning_rate`` (then stays there); 0: to the last step.
        end_learning_rate: float. ``"poly"`` policy: the rate at the end of the decay.
        slow_start_step: int. Use ``slow_start_learning_rate`` for the first steps; the
            decay schedule starts after them.
        slow_start_learning_rate: float. Learning rate of the slow start.
        optimizer: str. ``"momentum"`` (SGD with momentum) or ``"adam"``.
        momentum: float. Momentum of SGD.
        adam_learning_rate: float. Base learning rate when ``optimizer="adam"`` (the learning
            policy and slow start apply to it; the original kept it constant).
        adam_epsilon: float. Adam's epsilon.
        upsample_logits: bool. Compute the loss at label resolution (logits upsampled);
            if false, labels are downsampled (nearest) to the logits.
        label_weights: tuple of float. One loss weight per class; empty for all 1.
        top_k_percent_pixels: float. In (0, 1]: loss over the hardest pixels only.
        hard_example_mining_step: int. Steps over which the mined fraction anneals from 1
            to ``top_k_percent_pixels`` (0: from the start).
        last_layer_gradient_multiplier: float. Gradient multiplier of the last layers.
        last_layers_contain_logits_only: bool. Last layers = logits only (else also ASPP,
            image pooling, concat projection and decoder).
        tf_initial_checkpoint: str or None. Checkpoint to start from (an original TF1 or
            this project's); ignored when ``train_logdir`` already holds a checkpoint.
        initialize_last_layer: bool. Load the last layers from ``tf_initial_checkpoint``.
        save_interval_steps: int. Save a checkpoint every this many steps.
        save_interval_secs: int. Also save when this many seconds passed since the last
            save (the original's flag, default 1200); 0: by steps only. The final step is
            always saved.
        max_to_keep: int. Checkpoints kept in ``train_logdir``.
        log_steps: int. Log a progress line and summaries every this many steps.
        save_summaries_images: bool. Write input / ground truth / prediction image summaries.
        strategy: str. ``"auto"``, ``"one_device"``, ``"mirrored"``, ``"multi_worker"``
            (TF_CONFIG), ``"parameter_server"`` (TF_CONFIG with ``ps`` tasks; the original's
            ``--num_ps_tasks``) or ``"tpu"``.
        tpu: str or None. TPU name / address for the cluster resolver.
        mixed_precision: str. ``"float32"``, ``"bfloat16"`` or ``"float16"`` (with loss
            scaling); the loss is computed in float32 in every case.
        jit_compile: bool. XLA-compile the forward and backward pass.
        seed: int or None. Seed of the weight initialisation (and dropout).
        batch_norm_decay: float or None. Decay of the batch-norm moving averages in training;
            None keeps the network's own (0.9997 in the heads and Xception, 0.997 in
            MobileNetV2, as the original). Runs of a few hundred steps need a faster one
            (e.g. 0.99), else inference uses statistics still close to their initial values.
        quantize_delay_step: int. The original's flag: < 0 trains the float network; N >= 0
            trains the quantization-aware network (``ModelConfig.quantization`` must be set;
            ``check_quantization``), float up to step N - 1 (ranges tracked; each step then
            equals the float network's), quantized from the N-th optimiser step on (1-based,
            as the progress line counts; the original's ``fake_quantization_step >= N``), so 0
            and 1 quantize from the first step. Needs ``mixed_precision="float32"`` (the
            FakeQuant ops are float32).
    """

    train_batch_size: int = 8
    training_number_of_steps: int = 30000
    learning_policy: str = "poly"
    base_learning_rate: float = 1e-4
    learning_rate_decay_step: int = 2000
    learning_rate_decay_factor: float = 0.1
    learning_power: float = 0.9
    decay_steps: float = 0.0
    end_learning_rate: float = 0.0
    slow_start_step: int = 0
    slow_start_learning_rate: float = 1e-4
    optimizer: str = "momentum"
    momentum: float = 0.9
    adam_learning_rate: float = 1e-3
    adam_epsilon: float = 1e-8
    upsample_logits: bool = True
    label_weights: Tuple[float, ...] = ()
    top_k_percent_pixels: float = 1.0
    hard_example_mining_step: int = 0
    last_layer_gradient_multiplier: float = 1.0
    last_layers_contain_logits_only: bool = False
    tf_initial_checkpoint: Optional[str] = None
    initialize_last_layer: bool = True
    save_interval_steps: int = 1000
    save_interval_secs: int = 1200
    max_to_keep: int = 5
    log_steps: int = 10
    save_summaries_images: bool = False
    strategy: str = "auto"
    tpu: Optional[str] = None
    mixed_precision: str = "float32"
    jit_compile: bool = False
    seed: Optional[int] = None
    batch_norm_decay: Optional[float] = None
    quantize_delay_step: int = -1

    def __post_init__(self):
        try:
            weights = tuple(float(w) for w in (self.label_weights or ()))
        except (TypeError, ValueError):
            raise ConfigError(
                f"label_weights must be numbers. Received: label_weights={self.label_weights!r}")
        object.__setattr__(self, "label_weights", weights)
        if self.tf_initial_checkpoint == "":
            object.__setattr__(self, "tf_initial_checkpoint", None)

        def positive(name):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1. Received: {name}={getattr(self, name)}")

        for name in ("train_batch_size", "training_number_of_steps", "learning_rate_decay_step",
                     "save_interval_steps", "max_to_keep", "log_steps"):
            positive(name)
        for name, choices in (("learning_policy", LEARNING_POLICIES), ("optimizer", OPTIMIZERS),
                              ("strategy", STRATEGIES), ("mixed_precision", MIXED_PRECISION)):
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name} must be one of {', '.join(choices)}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        for name in ("base_learning_rate", "adam_learning_rate", "slow_start_learning_rate",
                     "adam_epsilon", "learning_power", "learning_rate_decay_factor",
                     "decay_steps", "end_learning_rate"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0. Received: {name}={getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1). Received: momentum={self.momentum}")
        if not 0 <= self.slow_start_step < self.training_number_of_steps:
            raise ConfigError(
                "slow_start_step must be in [0, training_number_of_steps). Received: "
                f"slow_start_step={self.slow_start_step}, "
                f"training_number_of_steps={self.training_number_of_steps}")
        if not 0 < self.top_k_percent_pixels <= 1:
            raise ConfigError("top_k_percent_pixels must be in (0, 1]. "
                             f"Received: top_k_percent_pixels={self.top_k_percent_pixels}")
        if self.hard_example_mining_step < 0:
            raise ConfigError("hard_example_mining_step must be >= 0. "
                             f"Received: hard_example_mining_step={self.hard_example_mining_step}")
        if any(w < 0 for w in self.label_weights):
            raise ConfigError(
                f"label_weights must be >= 0. Received: label_weights={list(self.label_weights)}")
        if self.last_layer_gradient_multiplier < 0:
            raise ConfigError("last_layer_gradient_multiplier must be >= 0. Received: "
                             f"last_layer_gradient_multiplier={self.last_layer_gradient_multiplier}")
        if self.seed is not None and not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer or None. Received: seed={self.seed!r}")
        if not isinstance(self.quantize_delay_step, int) or isinstance(
                self.quantize_delay_step, bool):
            raise ConfigError("quantize_delay_step must be an integer. "
                              f"Received: quantize_delay_step={self.quantize_delay_step!r}")
        if self.quantizes and self.mixed_precision in ("bfloat16", "float16"):
            raise ConfigError(
                "quantization-aware training computes in float32: mixed_precision must be "
                f"float32 (or auto). Received: quantize_delay_step={self.quantize_delay_step}, "
                f"mixed_precision={self.mixed_precision!r}")
        if self.batch_norm_decay is not None and not 0 <= self.batch_norm_decay < 1:
            raise ConfigError("batch_norm_decay must be in [0, 1) or None. "
                             f"Received: batch_norm_decay={self.batch_norm_decay}")

    @property
    def quantizes(self) -> bool:
        """Whether training is quantization-aware (``quantize_delay_step >= 0``)."""
        return self.quantize_delay_step >= 0

    def quantization_active(self, step: int) -> bool:
        """Whether optimiser step ``step`` (1-based) runs quantized."""
        return self.quantizes and step >= self.quantize_delay_step

    @property
    def learning_rate(self) -> float:
        """The optimiser's base learning rate (``adam_learning_rate`` for Adam)."""
        return self.adam_learning_rate if self.optimizer == "adam" else self.base_learning_rate


def check_quantization(model_config, train_config: TrainConfig) -> None:
    """A quantization-aware ModelConfig trains with ``quantize_delay_step >= 0`` and only it.

    Raises:
        ConfigError: one is set without the other.
    """
    if train_config.quantizes and model_config.quantization is None:
        raise ConfigError(
            f"quantize_delay_step={train_config.quantize_delay_step} trains the "
            "quantization-aware network: set ModelConfig.quantization ('per_channel' or "
            "'per_tensor'). Received: quantization=None")
    if model_config.quantization is not None and not train_config.quantizes:
        raise ConfigError(
            f"ModelConfig.quantization={model_config.quantization!r} is the "
            "quantization-aware network: train it with quantize_delay_step >= 0. Received: "
            f"quantize_delay_step={train_config.quantize_delay_step}")
