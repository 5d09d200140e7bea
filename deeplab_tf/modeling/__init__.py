"""The network only: layers, backbones (one module per family), heads, the functional graph
(``network.build_network``), the image pyramid (``pyramid``), the original's last-layer
scopes and gradient multipliers (``scopes``) and the multiply-add count (``madds``).

It imports ``deeplab_tf.config`` and nothing above it: training, evaluation, inference and
export build on it, never the other way round (``tests/test_imports.py`` checks this).
"""
