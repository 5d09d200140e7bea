"""The training step beside the original's TF1 graph, on this machine (not a test).

Times ``Trainer._train_step`` and one ``Session.run`` of ``peers.original_graph``'s training
step (the original's formulation of the same network) in two processes, alternating rounds
(``peers.train_compare``). Prints the machine (CPU model; avx512f, avx512_bf16 and
AMX present or not; TF_ENABLE_ONEDNN_OPTS), the Markdown table and one JSON line.

Usage, from the repository root:
  .venv/bin/python benchmarks/train_side_by_side.py [--model_variant=xception_65]
      [--crop_size=513 | --crop_size=513,513] [--batch_size=2] [--rounds=3]
      [--precision=float32] [--output_stride=16] [--num_classes=21]
      [--original_keeps_freed_memory] [--trainer_env=NAME=VALUE ...]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from deeplab_tf.runtime.allocator import keep_freed_memory  # noqa: E402
from peers.train_compare import compare_training, format_training_comparison  # noqa: E402
from deeplab_tf.bench.worker import original_environment  # noqa: E402
from deeplab_tf.config import ModelConfig  # noqa: E402
from deeplab_tf.bench.timing import load_average  # noqa: E402
from deeplab_tf.runtime.hardware import CHOICES, detect, resolve_mixed_precision  # noqa: E402
from deeplab_tf.runtime.onednn import prefer_onednn  # noqa: E402

ATROUS_RATES = {8: (12, 24, 36), 16: (6, 12, 18)}  # the original's recipes


def _crop_size(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected one size or height,width of positive ints, got {text!r}")
    return (values * 2)[:2]


def _assignment(text):
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_variant", default="xception_65",
                        choices=("xception_41", "xception_65", "xception_71"))
    parser.add_argument("--crop_size", type=_crop_size, default=[513, 513])
    parser.add_argument("--batch_size", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="float32", choices=CHOICES)
    parser.add_argument("--output_stride", type=int, default=16, choices=sorted(ATROUS_RATES))
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--original_keeps_freed_memory", action="store_true",
                        help="give the original's graph this project's malloc settings too "
                             "(deeplab_tf/allocator.py; by default it runs with glibc's)")
    parser.add_argument("--trainer_env", action="append", default=[], metavar="NAME=VALUE",
                        type=_assignment,
                        help="an environment variable for the trainer's process only "
                             "(repeatable), e.g. TF_ENABLE_ONEDNN_OPTS=1 and "
                             "ONEDNN_MAX_CPU_ISA=AVX2")
    return parser


def machine_lines():
    """The CPU, the load and the oneDNN setting the figures were measured with."""
    hardware = detect(gpus=())
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    return [f"cpu: {hardware.cpu_model or 'unknown'} ({hardware.cpu_count} logical CPUs)",
            hardware.flags_line(), f"load average: {load_average()}",
            "TF_ENABLE_ONEDNN_OPTS: " + (repr(onednn) if onednn is not None
                                         else "unset (TensorFlow's default for this CPU)"),
            "trainer's kernels: " + prefer_onednn(),
            "original's environment: " + (", ".join(
                f"{k}={v}" for k, v in sorted(original_environment().items())) or "inherited"),
            "trainer's malloc: " + keep_freed_memory()]


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.batch_size < 1 or args.rounds < 1 or args.num_classes < 1:
        _parser().error("--batch_size, --rounds and --num_classes must be >= 1")
    height, width = args.crop_size
    model_config = ModelConfig(model_variant=args.model_variant, num_classes=args.num_classes,
                               output_stride=args.output_stride,
                               atrous_rates=ATROUS_RATES[args.output_stride],
                               decoder_output_stride=(4,))
    print("\n".join(machine_lines()), flush=True)
    if args.precision == "auto":
        print("--precision=auto -> %s (%s)" % resolve_mixed_precision("auto"), flush=True)
    report = compare_training(model_config.to_dict(), height, width, args.batch_size,
                              args.rounds, precision=args.precision,
                              original_keeps_freed_memory=args.original_keeps_freed_memory,
                              trainer_environment=dict(args.trainer_env),
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_training_comparison(report))
    print(f"load average at the end: {load_average()}")
    print(json.dumps({"machine": machine_lines(), **report.to_dict()}))
    return 0 if report.ratio is not None else 1


if __name__ == "__main__":
    sys.exit(main())
