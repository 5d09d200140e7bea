"""Multiply-adds and parameters against the published figures (paper tables 3, 5; model zoo)."""

import pytest

from deeplab_tf import ModelConfig, model_stats

XCEPTION = dict(model_variant="xception_65", output_stride=16, atrous_rates=(6, 12, 18),
                decoder_output_stride=(4,))

PUBLISHED = [
    (XCEPTION, 513, 513, 54.17e9),
    (dict(XCEPTION, output_stride=8, atrous_rates=(12, 24, 36)), 513, 513, 177.10e9),
    (dict(XCEPTION, aspp_with_separable_conv=False, decoder_use_separable_conv=False),
     513, 513, 89.76e9),
    (dict(XCEPTION, aspp_with_separable_conv=False, decoder_output_stride=()), 513, 513, 68.00e9),
    (dict(XCEPTION, num_classes=19), 1025, 2049, 418.64e9),
    (dict(model_variant="mobilenet_v2", output_stride=16), 513, 513, 2.75e9),
    (dict(model_variant="mobilenet_v2", output_stride=16, depth_multiplier=0.5), 513, 513, 0.88e9),
]


@pytest.mark.parametrize("kwargs,height,width,published", PUBLISHED)
def test_multiply_adds_within_two_percent_of_published(kwargs, height, width, published):
    stats = model_stats(ModelConfig(**kwargs), height, width)
    assert abs(stats["madds"] / published - 1) <= 0.02, stats["madds"] / 1e9


def test_madds_count_one_convolution_by_hand():
    # logits 1x1 conv alone is num_classes x 256 per output pixel; check linearity in classes.
    a = model_stats(ModelConfig(model_variant="mobilenet_v2", num_classes=2), 65, 65)
    b = model_stats(ModelConfig(model_variant="mobilenet_v2", num_classes=5), 65, 65)
    assert b["madds"] - a["madds"] == 3 * 256 * 5 * 5
    assert b["params"] - a["params"] == 3 * (256 + 1)
