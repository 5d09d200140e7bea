"""What the heads share: the batch norm of the original's heads and the layer options a
``ModelConfig`` gives every head layer."""

from __future__ import annotations

# The original's extract_features and refine_by_decoder use these for every head layer.
HEAD_BATCH_NORM = dict(bn_momentum=0.9997, bn_epsilon=1e-5)


def layer_options(config) -> dict:
    """ConvBN / SeparableConvBN keyword arguments of a head layer for ``config`` (ReLU6 with
    ``use_bounded_activation``, as the original's ASPP and decoder)."""
    return dict(weight_decay=config.weight_decay, sync_batch_norm=config.sync_batch_norm,
                batch_norm_trainable=config.fine_tune_batch_norm,
                activation="relu6" if config.use_bounded_activation else "relu",
                **HEAD_BATCH_NORM)
