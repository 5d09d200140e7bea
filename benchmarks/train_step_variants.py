"""Formulations of the bfloat16 training step side by side, on this machine (not a test).

Times ``Trainer._train_step`` (``peers.train_compare``'s trainer worker: loss, weight decay,
multipliers, momentum, batch-norm updates, checks) in one process per variant, alternating
rounds, to answer "does this formulation help on this CPU kind?" with one command:

* ``float32``: the Trainer in float32;
* ``bfloat16``: ``--mixed_precision=bfloat16`` as the Trainer builds it (batch norm on the
  activations cast to float32 and back: two Casts per layer and direction);
* ``bfloat16_bn_native``: batch norm's fused kernel fed the bfloat16 activations as they are
  (no Casts; grappler can fuse the ReLU into it). Faster or not, it is not the Trainer's:
  trained so, the learning proof's model reached mIoU 0.53 against 0.86 with the Casts
  (docs/performance.md);
* ``bfloat16_depthwise_float32``: depthwise convolutions (and their batch norm) kept in
  float32 under mixed_bfloat16, their activations cast at both ends (on AMX, oneDNN has no
  AMX kernel for the depthwise weight gradient).

The variants other than ``float32`` / ``bfloat16`` change layers in their own worker process
only (this script's experiments, not options of the library).

Usage, from the repository root:
  .venv/bin/python benchmarks/train_step_variants.py [--model_variant=xception_65]
      [--crop_size=513] [--batch_size=2] [--rounds=5]
      [--variants=float32,bfloat16,bfloat16_bn_native,bfloat16_depthwise_float32]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from deeplab_tf.bench.timing import Summary, load_average, machine_line  # noqa: E402
from deeplab_tf.bench.worker import Pool, Worker  # noqa: E402

VARIANTS = ("float32", "bfloat16", "bfloat16_bn_native", "bfloat16_depthwise_float32")


def _batch_norm_on_bfloat16():
    import tensorflow as tf

    from deeplab_tf.modeling.layers import batch_norm

    cast = batch_norm.BatchNorm.call

    def call(self, inputs, training=None, mask=None):
        if inputs.dtype != tf.bfloat16 or not training or self.always_inference:
            return cast(self, inputs, training, mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels])
        y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=tf.zeros([0]), variance=tf.zeros([0]),
            epsilon=float(self.epsilon), exponential_avg_factor=1.0, data_format="NHWC",
            is_training=True)
        decay = tf.cast(self.momentum, tf.float32)
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(moving * decay + tf.stop_gradient(batch) * (1.0 - decay))
        return y

    batch_norm.BatchNorm.call = call


def _depthwise_in_float32():
    from deeplab_tf.modeling.layers import conv_bn

    init = conv_bn.ConvBN.__init__

    def __init__(self, *args, **kwargs):
        if kwargs.get("depthwise") and "bfloat16" in str(kwargs.get("dtype", "")):
            kwargs["dtype"] = "float32"
        init(self, *args, **kwargs)

    conv_bn.ConvBN.__init__ = __init__


def _factory(variant, model_variant, size, batch_size, warmup):
    """Worker factory: one Trainer step of ``variant`` per call."""
    from peers.train_compare import _trainer_factory

    from deeplab_tf.bench.suite import recipe_config

    if variant == "bfloat16_bn_native":
        _batch_norm_on_bfloat16()
    elif variant == "bfloat16_depthwise_float32":
        _depthwise_in_float32()
    precision = "float32" if variant == "float32" else "bfloat16"
    step, facts = _trainer_factory(recipe_config(model_variant).to_dict(), size, size,
                                   batch_size, precision, tempfile.mkdtemp())
    for _ in range(warmup):
        step()
    return step, facts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--crop_size", type=int, default=513)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="float32,bfloat16,bfloat16_bn_native")
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants must be some of {', '.join(VARIANTS)}. Received: "
                     f"{args.variants!r}")
    print(machine_line(), flush=True)
    workers = []
    try:
        for variant in variants:
            print(f"  building {variant} ...", file=sys.stderr, flush=True)
            workers.append(Worker(variant, _factory, (variant, args.model_variant,
                                                      args.crop_size, args.batch_size,
                                                      args.warmup)))
        pool = Pool(workers)
        times = {variant: [] for variant in variants}
        for index in range(args.rounds):
            for name, (seconds, _) in pool.round(index).items():
                times[name].append(seconds)
            print(f"  round {index + 1}/{args.rounds}: " + "  ".join(
                f"{name} {values[-1]:.2f}s" for name, values in times.items()),
                file=sys.stderr, flush=True)
    finally:
        for worker in workers:
            worker.close()
    base = statistics.median(times[variants[0]])
    print(f"{args.model_variant} {args.crop_size}x{args.crop_size}, batch {args.batch_size}; "
          f"median of {args.rounds} alternating rounds, each variant in its own process")
    print(f"| variant | s/step | best..worst (s) | vs {variants[0]} |")
    print("|---|---:|---:|---:|")
    summaries = {name: Summary.of(values) for name, values in times.items()}
    for name, s in summaries.items():
        print(f"| {name} | {s.median:.2f} | {s.best:.2f}..{s.worst:.2f} | "
              f"{base / s.median:.2f}x |")
    print(f"load average at the end: {load_average()}")
    print(json.dumps({"machine": machine_line(), "times": times}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
