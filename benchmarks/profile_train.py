"""Op-level profile of the real ``Trainer`` step: total self time per TF op type.

Runs ``Trainer`` on synthetic data for ``--warmup`` steps, then traces ``--steps`` steps
with ``tf.profiler`` and prints the op types that took the most host time (not a test).
With ``--peer``, the same for the original's formulation of the step
(``peers.original_graph``: one ``Session.run`` per step), so that the two
profiles can be compared op type by op type. ``--precision`` is the Trainer's
``--mixed_precision`` (``auto`` resolved and said).

With ``--onednn_verbose``, oneDNN reports every primitive it runs during the profiled steps
(``ONEDNN_VERBOSE=1``, its output caught on file descriptor 1) and the script also prints,
per primitive kind, implementation, propagation and data types, the calls and milliseconds
per step: which kernel (e.g. ``brg_conv_fwd:avx512_core_amx``, ``jit_bf16:avx512_core_bf16``,
``gemm:jit``, ``ref``) computes the forward pass, the input gradient and the weight gradient.
The op profile then includes oneDNN's logging overhead (small per call).

Usage:
  .venv/bin/python benchmarks/profile_train.py [--model_variant=xception_65] [--crop_size=513]
      [--batch_size=2] [--precision=float32|bfloat16|auto] [--top=40] [--peer]
      [--onednn_verbose]
"""

import argparse
import collections
import contextlib
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "--onednn_verbose" in sys.argv[1:]:  # read by oneDNN when TensorFlow loads it
    os.environ["ONEDNN_VERBOSE"] = "1"

import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # noqa: E402

from deeplab_tf.bench.suite import recipe_config  # noqa: E402
from deeplab_tf.bench.timing import load_average, machine_line  # noqa: E402
from deeplab_tf.bench.train import synthetic_dataset_fn  # noqa: E402
from deeplab_tf.config import TrainConfig  # noqa: E402
from deeplab_tf.runtime.hardware import CHOICES, detect, resolve_mixed_precision  # noqa: E402
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
    parser.add_argument("--precision", default="float32", choices=CHOICES,
                        help="the Trainer's --mixed_precision")
    parser.add_argument("--onednn_verbose", action="store_true",
                        help="also summarise oneDNN's primitives (ONEDNN_VERBOSE=1)")
    args = parser.parse_args()
    hardware = detect(gpus=())
    print(machine_line(), flush=True)
    if not args.peer:
        args.precision, reason = resolve_mixed_precision(args.precision, hardware)
        print(f"precision: {args.precision} ({reason})")
    model_config = recipe_config(args.model_variant, num_classes=args.num_classes)
    trace_dir = tempfile.mkdtemp()
    verbose_log = os.path.join(trace_dir, "onednn_verbose.txt")
    caught = _stdout_to(verbose_log) if args.onednn_verbose else contextlib.nullcontext()
    if args.peer:
        _profile_peer(args, model_config, trace_dir, caught)
    else:
        _profile_trainer(args, model_config, trace_dir, caught)
    print(f"load average at the end: {load_average()}")
    _print_op_totals(trace_dir, args.steps, args.top)
    if args.onednn_verbose:
        _print_onednn_totals(verbose_log, args.steps, args.top)


@contextlib.contextmanager
def _stdout_to(path):
    """File descriptor 1 (where oneDNN prints) goes to ``path`` inside the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "w") as target:
        os.dup2(target.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def _profile_peer(args, model_config, trace_dir, caught):
    from peers.original_graph import build_training_graph

    step = build_training_graph(model_config, args.crop_size, args.crop_size,
                                args.batch_size).step_fn()
    for _ in range(args.warmup):
        step()
    with caught:
        tf.profiler.experimental.start(trace_dir)
        for _ in range(args.steps):
            step()
        tf.profiler.experimental.stop()


def _profile_trainer(args, model_config, trace_dir, caught):
    logdir = tempfile.mkdtemp()
    total = args.warmup + args.steps
    train_config = TrainConfig(train_batch_size=args.batch_size, training_number_of_steps=total,
                               base_learning_rate=1e-4, log_steps=1000, save_interval_steps=10**6,
                               save_interval_secs=10**6, strategy="one_device",
                               mixed_precision=args.precision)
    make = lambda steps: Trainer(  # noqa: E731
        model_config, dataclass_replace(train_config, steps), train_logdir=logdir,
        dataset_fn=synthetic_dataset_fn(args.batch_size, args.crop_size, args.crop_size,
                              args.num_classes),
        ignore_label=255)
    trainer = make(args.warmup)
    trainer.run()
    trainer.config = dataclass_replace(train_config, total)
    with caught:
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


def _print_onednn_totals(path, steps, top):
    """Calls and milliseconds per step of each (primitive, implementation, propagation, data
    types) in oneDNN's verbose lines (``onednn_verbose,...,exec,cpu,KIND,IMPL,PROP,MEMORY
    DESCRIPTORS,...,TIME``)."""
    totals, calls = collections.Counter(), collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            fields = line.rstrip().split(",")
            if "exec" not in fields[:4] or len(fields) < 8:
                continue
            at = fields.index("exec")
            kind, impl, prop, memory = fields[at + 2:at + 6]
            types = "/".join(d.split(":")[1] for d in memory.split()
                             if len(d.split(":")) > 1 and d.split(":")[1] != "undef")
            key = f"{kind} {impl} {prop} {types}"
            try:
                totals[key] += float(fields[-1]) / 1e3 / steps
            except ValueError:
                continue
            calls[key] += 1 / steps
    print(f"oneDNN primitives ({path}): seconds per step, calls per step, "
          "kind implementation propagation types")
    print(f"{sum(totals.values()):9.3f} s  total")
    for key, seconds in totals.most_common(top):
        print(f"{seconds:9.3f} s  {calls[key]:7.0f}  {key}")


def dataclass_replace(config, steps):
    import dataclasses
    return dataclasses.replace(config, training_number_of_steps=steps)


if __name__ == "__main__":
    main()
