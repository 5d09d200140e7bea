"""Old home of the benchmarks: kept as aliases of ``deeplab_tf.bench`` until deeplab-bench
reads the package directly (then removed)."""

from deeplab_tf.bench.model import (Result, agreement, format_table,  # noqa: F401
                                    inference_benchmarks)
from deeplab_tf.bench.timing import peak_flops, peak_memory_mb, time_call  # noqa: F401


def train_benchmarks(config, height, width, batch_size=2, modes=("float32", "bfloat16"),
                     jit=False, steps=3, log=print):
    """``bench.train.train_benchmarks`` (the real Trainer step) as a list of ``Result``."""
    from deeplab_tf.bench.train import train_benchmarks as run
    from deeplab_tf.model import build_model, count_madds

    madds = count_madds(build_model(config), height, width) * batch_size
    out = []
    for r in run(config.to_dict(), height, width, batch_size, modes, (jit,), steps, log=log):
        if r.summary:
            out.append(Result(r.name, batch_size, r.summary.median, 3 * 2.0 * madds, r.reason))
    return out
