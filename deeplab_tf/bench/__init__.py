"""Benchmarks of the model, the runtimes, training and the data path, in one package.

* ``timing``: medians and spreads of repeated calls; the machine's peak (better of a large
  matmul and a large 3x3 convolution, measured in the same run); peak memory.
* ``model``: in-process forward-pass latency per formulation (eager, tf.function, folded, XLA,
  bfloat16), FLOP utilisation, agreement of the fast formulations with float32.
* ``contenders`` / ``worker`` / ``compare``: TensorFlow (tf.function, batch norm folded,
  frozen), OpenVINO, ONNX Runtime, TFLite and the original's frozen graph side by side, each
  in its own process, alternating rounds.
* ``train``: images/s of the real ``Trainer`` step (float32 / bfloat16 / float16, +-XLA).
* ``original_graph`` / ``train_compare``: the original's training step written TF1 style (its
  variables, fused batch norm, slim L2, ``ApplyMomentum``; one ``Session.run``), timed beside
  the ``Trainer``'s step in alternating rounds.
* ``data``: conversion and input-pipeline throughput on a synthetic dataset.
* ``export``: latency and size of the SavedModel and TFLite exports (one process).
* ``suite``: recipe configurations and the GPU suite of ``benchmarks/gpu.sh``.

No test asserts a time: these are measurements, quoted as ratios measured in one run.
"""
