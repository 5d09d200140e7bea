"""Building blocks shared by every backbone and head, one per module.

The original network (TF1 slim) is a stack of three kinds of operation, rebuilt here:

* ``conv_bn.ConvBN``: one convolution (regular or depthwise) -> batch norm -> optional
  ReLU/ReLU6, with the original's *fixed* symmetric padding for strided convolutions (pad,
  then VALID) instead of 'SAME'. Each ``ConvBN`` carries the original's variable scope
  (``scope``), so converting a checkpoint is a name map
  (``original_layer.original_variable_map``).
* ``activations``: the activations a ``ConvBN`` applies, by name (ReLU, ReLU6, hard-swish,
  q-sigmoid, sigmoid, the bounded clip).
* ``separable_conv_bn.SeparableConvBN``: the original's split separable convolution,
  depthwise (with ``dilation_rate``) -> BN -> [act] -> pointwise 1x1 -> BN -> [act].
* ``resize.resize_bilinear``: bilinear resize with align_corners=True semantics, used for
  every feature and logits resize as in the original (``resize.ResizeLike`` as a layer).
* ``normalization.Normalization``: the backbone's input normalisation, inside the model.
* ``scaled_resize.ScaledResize`` and ``merge_logits.MergeLogits``: the image pyramid's
  resizes (to ``scale_dimension`` of the input size) and its max / mean merge.
* ``original_layer.OriginalLayer``: the base of every layer that owns variables of the
  original's checkpoints (``original_variables`` + ``fold_batch_norm``); checkpoint loading
  and batch-norm folding go through its ``iter_original_layers``.
* ``fused_separable_conv_bn.FusedSeparableConvBN``, ``nas_cell.NasCell``,
  ``drop_path.DropPath``: the NAS backbones' separable convolution (no batch norm between
  depthwise and pointwise), cell and drop-path regularisation.
* ``residual_add.ResidualAdd``: a block's residual sum (``keras.layers.Add``'s, quantizable).
* ``quantize``: quantization-aware training (the original's ``--quantize_delay_step``):
  ``RangeQuantizer`` holds a tensor's 8-bit range; ``ConvBN``, ``SeparableConvBN``,
  ``ResidualAdd`` and ``Normalization`` take ``quantization`` (None: float, unchanged) or
  inherit it from ``quantize.quantization_scope``.

Import each from its module, e.g. ``from deeplab_tf.modeling.layers.conv_bn import ConvBN``.
"""
