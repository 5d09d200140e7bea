"""Writes the original export_model.py's frozen_inference_graph.pb, built TF1 style from this
project's weights (``peers.original_export``), for ``deeplab-bench
--compare_frozen_graph`` where the original's own graph is not at hand (not a test).

The weights are ``bench.model.randomize_weights(model, --seed)``, the ones every deeplab-bench
contender builds from the same seed, so the original's labels are compared with the others'
too; or a checkpoint's (``--checkpoint_path``, then pass the same checkpoint to deeplab-bench).

Usage, from the repository root:
  .venv/bin/python benchmarks/original_frozen_graph.py --output=bench_output/original.pb
      [--model_variant=xception_65] [--crop_size=513,513] [--output_stride=16]
      [--num_classes=21] [--seed=0 | --checkpoint_path=PATH]
  .venv/bin/deeplab-bench --model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 \\
      --atrous_rates=18 --decoder_output_stride=4 --crop_size=513,513 \\
      --compare_frozen_graph=bench_output/original.pb --contenders=
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_side_by_side import ATROUS_RATES, _crop_size  # noqa: E402


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="the .pb to write (atomically)")
    parser.add_argument("--model_variant", default="xception_65",
                        choices=("xception_41", "xception_65", "xception_71"))
    parser.add_argument("--crop_size", type=_crop_size, default=[513, 513])
    parser.add_argument("--output_stride", type=int, default=16, choices=sorted(ATROUS_RATES))
    parser.add_argument("--num_classes", type=int, default=21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint_path", default=None)
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    from peers.original_export import original_frozen_graph

    from deeplab_tf import fileio
    from deeplab_tf.bench.model import randomize_weights
    from deeplab_tf.config import ModelConfig
    from deeplab_tf.model import build_model

    config = ModelConfig(model_variant=args.model_variant, output_stride=args.output_stride,
                         atrous_rates=ATROUS_RATES[args.output_stride],
                         decoder_output_stride=(4,), num_classes=args.num_classes)
    model = build_model(config)
    if args.checkpoint_path:
        from deeplab_tf.checkpoints.strict import load_for_inference

        load_for_inference(model, args.checkpoint_path)
    else:
        randomize_weights(model, args.seed)
    graph_def = original_frozen_graph(model, config, tuple(args.crop_size))
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    fileio.atomic_write_bytes(args.output, graph_def.SerializeToString())
    print(f"wrote {args.output}: {len(graph_def.node)} nodes, "
          f"{os.path.getsize(args.output) / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
