"""The logits: a 1x1 convolution with bias to ``num_classes`` (scope ``logits/semantic``).

With ``decoder_output_is_logits`` there is no logits layer: ``network.build_network`` returns
the decoder's output (``heads.decoder``) as the logits, as the original does.
"""

from __future__ import annotations

from deeplab_tf.modeling.layers.conv_bn import ConvBN

LOGITS_STDDEV = 0.01


def logits(features, config):
    """1x1 convolution with bias to ``num_classes`` (scope ``logits/semantic``).

    Always computed in float32, also under a mixed-precision policy: logits rounded to
    bfloat16 (8 significant bits) would flip the argmax wherever two classes are close, and
    this convolution costs under 0.2 % of the model.
    """
    return ConvBN(config.num_classes, 1, use_batch_norm=False, activation=None,
                  weight_decay=config.weight_decay, kernel_stddev=LOGITS_STDDEV,
                  scope="logits/semantic", dtype="float32")(features)
