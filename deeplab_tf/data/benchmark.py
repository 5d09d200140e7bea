"""Old home of the data benchmark: an alias of ``deeplab_tf.bench.data`` until deeplab-bench
imports it from there (then removed)."""

from deeplab_tf.bench.data import *  # noqa: F401,F403
from deeplab_tf.bench.data import pipeline_throughput, run_benchmark, time_pipeline  # noqa: F401
