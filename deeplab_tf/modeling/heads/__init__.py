"""The heads on the backbone's features, one module each:

* ``aspp``: ASPP with the image-level branch (DeepLabv3);
* ``dense_prediction_cell``: the Dense Prediction Cell, in place of ASPP;
* ``decoder``: the DeepLabv3+ decoder;
* ``logits``: the 1x1 logits convolution;
* ``common``: the batch norm and layer options every head layer shares.

``deeplab_tf.modeling.network`` wires them: features -> ASPP (or the cell, or nothing with
``aspp_with_batch_norm=False``) -> [decoder] -> logits.
"""
