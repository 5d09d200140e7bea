"""End to end: a checkpoint in the original's naming -> Keras logits == an independent NumPy DeepLab.

The NumPy network below is written from the original's documented graph (xception.py,
model.py), op by op in float64, reading weights by their original checkpoint names; it
shares no code with the library. The Keras model loads the same values through
``load_original_checkpoint``; the issue's bar is max |difference| <= 1e-4 x max |logit| and
identical argmax.
"""

import numpy as np
import pytest

import helpers
from deeplab_tf import ModelConfig, build_model, load_original_checkpoint

# xception_41: (scope, depths, skip, activation inside separable convs, units, stride)
XCEPTION_41 = [
    ("entry_flow/block1", (128, 128, 128), "conv", False, 1, 2),
    ("entry_flow/block2", (256, 256, 256), "conv", False, 1, 2),
    ("entry_flow/block3", (728, 728, 728), "conv", False, 1, 2),
    ("middle_flow/block1", (728, 728, 728), "sum", False, 8, 1),
    ("exit_flow/block1", (728, 1024, 1024), "conv", False, 1, 2),
    ("exit_flow/block2", (1536, 1536, 2048), "none", True, 1, 1),
]
TAP = "xception_41/entry_flow/block2/unit_1/xception_module/separable_conv2_pointwise"


class NumpyDeepLab:
    """``bounded``: the original's use_bounded_activation (ReLU6, clipping to [-6, 6] in
    Xception, 'SAME' padding of its strided separable convolutions)."""

    def __init__(self, weights, bounded=False):
        self.w = {k: np.asarray(v, np.float64) for k, v in weights.items()}
        self.bounded = bounded

    def act(self, x):
        return np.clip(x, 0, 6) if self.bounded else np.maximum(x, 0)

    def _bn(self, x, scope, eps):
        w = self.w
        return helpers.np_batch_norm(x, w[scope + "/BatchNorm/gamma"], w[scope + "/BatchNorm/beta"],
                                     w[scope + "/BatchNorm/moving_mean"],
                                     w[scope + "/BatchNorm/moving_variance"], eps)

    def _pad(self, x, k, stride, rate, explicit=True):
        # conv2d_same / separable_conv2d_same: explicit padding only when strided ('SAME'
        # with use_explicit_padding=False).
        if stride > 1 and explicit:
            return helpers.np_pad_fixed(x, k, rate)
        return helpers.np_pad_same(x, k, stride, rate)

    def conv(self, x, scope, stride=1, rate=1, relu=True, eps=1e-3):
        k = self.w[scope + "/weights"]
        y = self._bn(helpers.np_conv2d(self._pad(x, k.shape[0], stride, rate), k, stride, rate),
                     scope, eps)
        if relu == "relu":  # ReLU whatever bounded says (image pooling)
            return np.maximum(y, 0)
        return self.act(y) if relu else y

    def separable(self, x, scope, depth_stride=1, rate=1, relu_inside=True, eps=1e-3):
        k = self.w[scope + "_depthwise/depthwise_weights"]
        explicit = not self.bounded
        y = helpers.np_depthwise_conv2d(self._pad(x, 3, depth_stride, rate, explicit), k,
                                        depth_stride, rate)
        # Bounded, an Xception separable convolution without ReLU inside clips.
        inside = self.act if relu_inside else (
            (lambda t: np.clip(t, -6, 6)) if self.bounded else (lambda t: t))
        y = inside(self._bn(y, scope + "_depthwise", eps))
        y = self._bn(helpers.np_conv2d(y, self.w[scope + "_pointwise/weights"]),
                     scope + "_pointwise", eps)
        return inside(y)

    def backbone(self, x, output_stride):
        x = x * (2.0 / 255.0) - 1.0
        x = self.conv(x, "xception_41/entry_flow/conv1_1", stride=2)
        x = self.conv(x, "xception_41/entry_flow/conv1_2")
        target, current, rate, taps = output_stride // 2, 1, 1, {}
        for block, depths, skip, act_inside, units, stride in XCEPTION_41:
            for unit in range(units):
                if current == target:
                    unit_stride, unit_rate = 1, rate
                    rate *= stride
                else:
                    unit_stride, unit_rate = stride, 1
                    current *= stride
                scope = f"xception_41/{block}/unit_{unit + 1}/xception_module"
                residual = x
                for i in range(3):
                    if not act_inside:
                        residual = self.act(residual)
                    residual = self.separable(residual, f"{scope}/separable_conv{i + 1}",
                                              unit_stride if i == 2 else 1, unit_rate, act_inside)
                    taps[f"{scope}/separable_conv{i + 1}_pointwise"] = residual
                if skip == "none":
                    x = residual
                    continue
                shortcut = x
                if skip == "conv":
                    k = self.w[scope + "/shortcut/weights"]
                    shortcut = self._bn(helpers.np_conv2d(x, k, unit_stride), scope + "/shortcut", 1e-3)
                if self.bounded:
                    x = self.act(np.clip(residual, -6, 6) + np.clip(shortcut, -6, 6))
                else:
                    x = residual + shortcut
        return x, taps

    def __call__(self, images, output_stride, atrous_rates):
        features, taps = self.backbone(images, output_stride)
        h, w = features.shape[1:3]
        pooled = features.mean(axis=(1, 2), keepdims=True)
        pooled = self.conv(pooled, "image_pooling", relu="relu", eps=1e-5)
        branches = [np.broadcast_to(pooled, (features.shape[0], h, w, pooled.shape[-1])),
                    self.conv(features, "aspp0", eps=1e-5)]
        for i, rate in enumerate(atrous_rates, 1):
            branches.append(self.separable(features, f"aspp{i}", 1, rate, True, eps=1e-5))
        x = self.conv(np.concatenate(branches, -1), "concat_projection", eps=1e-5)
        low = self.conv(taps[TAP], "decoder/feature_projection0", eps=1e-5)
        size = ((images.shape[1] - 1) // 4 + 1, (images.shape[2] - 1) // 4 + 1)
        x = helpers.np_resize_bilinear_align_corners(x, *size)
        low = helpers.np_resize_bilinear_align_corners(low, *size)
        x = np.concatenate([x, low], -1)
        x = self.separable(x, "decoder/decoder_conv0", eps=1e-5)
        x = self.separable(x, "decoder/decoder_conv1", eps=1e-5)
        return helpers.np_conv2d(x, self.w["logits/semantic/weights"]) + self.w["logits/semantic/biases"]


@pytest.mark.parametrize("output_stride,atrous_rates,size,bounded", [
    (16, (2, 3), (65, 57), False), (8, (4,), (49, 49), False),
    # use_bounded_activation on even sizes, where 'SAME' and the fixed padding differ.
    pytest.param(16, (2, 3), (64, 58), True, marks=pytest.mark.slow)])
def test_converted_checkpoint_reproduces_numpy_original(tmp_path, output_stride, atrous_rates,
                                                        size, bounded):
    config = ModelConfig(model_variant="xception_41", num_classes=5, output_stride=output_stride,
                         atrous_rates=atrous_rates, decoder_output_stride=(4,),
                         use_bounded_activation=bounded)
    model = build_model(config)
    values = helpers.random_original_values(model, seed=11)
    # He-style kernels keep activations O(1) through 40 layers.
    for name, value in values.items():
        if name.endswith("weights"):
            fan_in = np.prod(value.shape[:2]) * (1 if "depthwise" in name else value.shape[2])
            values[name] = (value / 0.1 * np.sqrt(1.0 / fan_in)).astype(np.float32)
    prefix = helpers.write_tf1_checkpoint(str(tmp_path / "model.ckpt"), values)
    report = load_original_checkpoint(model, prefix)
    assert report.missing_in_checkpoint == [] and report.unused_in_checkpoint == []

    images = np.random.default_rng(5).uniform(0, 255, (2,) + size + (3,)).astype(np.float32)
    got = model(images, training=False).numpy()
    want = NumpyDeepLab(values, bounded)(images.astype(np.float64), output_stride, atrous_rates)
    assert got.shape == want.shape
    scale = np.abs(want).max()
    assert scale > 1e-3
    assert np.abs(got - want).max() <= 1e-4 * scale
    np.testing.assert_array_equal(got.argmax(-1), want.argmax(-1))
