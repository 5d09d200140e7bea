"""The heads on the backbone's features, one module each:

* ``aspp``: ASPP with the image-level branch (DeepLabv3);
* ``decoder``: the DeepLabv3+ decoder;
* ``logits``: the 1x1 logits convolution;
* ``common``: the batch norm and layer options every head layer shares.

``deeplab_tf.modeling.network`` wires them: features -> ASPP -> [decoder] -> logits.
"""
