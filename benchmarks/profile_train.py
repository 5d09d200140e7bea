"""Op-level profile of the real ``Trainer`` step: total self time per TF op type.

Runs ``Trainer`` on synthetic data for ``--warmup`` steps, then traces ``--steps`` steps
with ``tf.profiler`` and prints the op types that took the most host time (not a test).
With ``--peer``, the same for the original's formulation of the step
(``peers.original_graph``: one ``Session.run`` per step), so that the two
profiles can be compared op type by op type.

Usage:
  .venv/bin/python benchmarks/profile_train.py [--model_variant=xception_65] [--crop_size=513]
      [--batch_size=2] [--top=40] [--peer]
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # noqa: E402

from deeplab_tf.bench.suite import recipe_config  # noqa: E402
from deeplab_tf.bench.train import synthetic_dataset_fn  # noqa: E402
from deeplab_tf.config import TrainConfig  # noqa: E402
from deeplab_tf.train.loop import Trainer  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65")
    parser.add_argument("--crop_size", type=int, default=513)
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--peer", action="store_true",
                        help="profile the original's formulation (peers.original_graph)")
    args = parser.parse_args()
    model_config = recipe_config(args.model_variant, num_classes=args.num_classes)
    trace_dir = tempfile.mkdtemp()
    if args.peer:
        _profile_peer(args, model_config, trace_dir)
    else:
        _profile_trainer(args, model_config, trace_dir)
    _print_op_totals(trace_dir, args.steps, args.top)


def _profile_peer(args, model_config, trace_dir):
    from peers.original_graph import build_training_graph

    step = build_training_graph(model_config, args.crop_size, args.crop_size,
                                args.batch_size).step_fn()
    for _ in range(args.warmup):
        step()
    tf.profiler.experimental.start(trace_dir)
    for _ in range(args.steps):
        step()
    tf.profiler.experimental.stop()


def _profile_trainer(args, model_config, trace_dir):
    logdir = tempfile.mkdtemp()
    total = args.warmup + args.steps
    train_config = TrainConfig(train_batch_size=args.batch_size, training_number_of_steps=total,
                               base_learning_rate=1e-4, log_steps=1000, save_interval_steps=10**6,
                               save_interval_secs=10**6, strategy="one_device")
    make = lambda steps: Trainer(  # noqa: E731
        model_config, dataclass_replace(train_config, steps), train_logdir=logdir,
        dataset_fn=synthetic_dataset_fn(args.batch_size, args.crop_size, args.crop_size,
                              args.num_classes),
        ignore_label=255)
    trainer = make(args.warmup)
    trainer.run()
    trainer.config = dataclass_replace(train_config, total)
    tf.profiler.experimental.start(trace_dir)
    trainer.run()
    tf.profiler.experimental.stop()


def _print_op_totals(trace_dir, steps, top):
    paths = glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)
    data, _ = _pywrap_profiler_plugin.xspace_to_tools_data(paths, "framework_op_stats", {})
    table = json.loads(data)[0]
    columns = [column["id"] for column in table["cols"]]
    per_type, count = collections.Counter(), collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [cell["v"] for cell in row["c"]]))
        if values["type"] == "IDLE":
            continue
        per_type[values["type"]] += values["total_self_time"] / 1e6 / steps
        count[values["type"]] += values["occurrences"] / steps
    print(f"trace: {trace_dir}; seconds of op self time per step, summed over threads")
    print(f"{sum(per_type.values()):9.3f} s  total")
    for name, seconds in per_type.most_common(top):
        print(f"{seconds:9.3f} s  {count[name]:7.0f}  {name}")


def dataclass_replace(config, steps):
    import dataclasses
    return dataclasses.replace(config, training_number_of_steps=steps)


if __name__ == "__main__":
    main()
