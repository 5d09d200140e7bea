"""The precision a network is built to compute in: Keras' dtype policy while layers are made.

``dtype_policy("bfloat16")`` builds layers under Keras' ``mixed_bfloat16`` policy (float32
variables, bfloat16 computation), as the Trainer does for ``--mixed_precision`` and the
inference path for ``--inference_precision``.

Example:

>>> with dtype_policy("bfloat16"):
...     model = keras.Model(*build_network(config))
"""

from __future__ import annotations

import contextlib

import keras

# A precision name (TrainConfig.mixed_precision, InferenceSpec.precision) -> Keras dtype policy.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Sets Keras' global dtype policy for ``precision`` while layers are built, then
    restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
