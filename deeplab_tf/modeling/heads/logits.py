"""The logits: a 1x1 convolution with bias to ``num_classes`` (scope ``logits/semantic``).

With ``decoder_output_is_logits`` there is no logits layer: ``network.build_network`` returns
the decoder's output (``heads.decoder``) as the logits, as the original does.
With ``aspp_with_batch_norm=False`` (no ASPP), DeepLab-v2's logits instead: one biased
convolution per atrous rate (kernel ``logits_kernel_size``, dilated by the rate; scopes
``logits/semantic``, ``logits/semantic_1`` ...), summed, as the original's
``get_branch_logits``.
"""

from __future__ import annotations

import keras

from deeplab_tf.modeling.layers.conv_bn import ConvBN

LOGITS_STDDEV = 0.01


def logits_rates(config):
    """The dilation rate of each logits convolution: ``atrous_rates`` for DeepLab-v2's
    logits, else a single 1."""
    if config.aspp_with_batch_norm or not config.atrous_rates:
        return (1,)
    return tuple(config.atrous_rates)


def logits(features, config):
    """The logits convolution(s) with bias to ``num_classes`` (see the module docstring).

    Always computed in float32, also under a mixed-precision policy: logits rounded to
    bfloat16 (8 significant bits) would flip the argmax wherever two classes are close, and
    this convolution costs under 0.2 % of the model.
    """
    branches = [ConvBN(config.num_classes, config.logits_kernel_size, dilation_rate=rate,
                       use_batch_norm=False, activation=None, weight_decay=config.weight_decay,
                       kernel_stddev=LOGITS_STDDEV,
                       scope="logits/semantic" + (f"_{index}" if index else ""),
                       dtype="float32")(features)
                for index, rate in enumerate(logits_rates(config))]
    if len(branches) == 1:
        return branches[0]
    return keras.layers.Add(name="logits.sum", dtype="float32")(branches)
