"""Benchmarks of the model, the runtimes, training and the data path, in one package.

* ``timing``: medians and spreads of repeated calls; the machine's peak (better of a large
  matmul and a large 3x3 convolution, measured in the same run); peak memory.
* ``model``: in-process forward-pass latency per formulation (eager, tf.function, folded, XLA,
  bfloat16), FLOP utilisation, agreement of the fast formulations with float32.
* ``contenders`` / ``worker`` / ``compare``: TensorFlow (tf.function, batch norm folded,
  frozen), OpenVINO, ONNX Runtime, TFLite and the original's frozen graph side by side, each
  in its own process, alternating rounds.
* ``train``: images/s of the real ``Trainer`` step (float32 / bfloat16 / float16, +-XLA).
* ``data``: conversion and input-pipeline throughput on a synthetic dataset.
* ``export``: latency and size of the SavedModel and TFLite exports (one process).
* ``suite``: recipe configurations and the GPU suite of ``benchmarks/gpu.sh``.

The original's graphs rebuilt TF1 style, the peers of the side-by-side training and
inference comparisons, are not part of the package: ``benchmarks/peers/``.

No test asserts a time: these are measurements, quoted as ratios measured in one run.
"""
