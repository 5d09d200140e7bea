#!/usr/bin/env bash
# GPU benchmark in one command (under 8 minutes on one GPU): training images/s of the real
# Trainer step for xception_65 and mobilenet_v2 at 513x513, batch 8 (float32, bfloat16,
# float16, with and without XLA, and MirroredStrategy over the one GPU), then inference
# latency (tf.function, batch norm folded, frozen graph), each contender in its own process.
#
#   benchmarks/gpu.sh            # the full run (needs a GPU to finish in time)
#   benchmarks/gpu.sh --smoke    # a tiny model at 65x65 that runs anywhere (CPU) in minutes
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
SMOKE=False
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=True ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "gpu.sh: unknown argument '$arg' (expected --smoke or nothing)" >&2; exit 2 ;;
  esac
done
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
if [ "$SMOKE" = False ]; then
  "$PYTHON" -c "import tensorflow as tf, sys; sys.exit(0 if tf.config.list_physical_devices('GPU') else 'gpu.sh: TensorFlow sees no GPU (use --smoke to try the script on a CPU)')"
fi
exec timeout 470 "$PYTHON" -c "from deeplab_tf.bench.suite import gpu_suite; gpu_suite(smoke=$SMOKE)"
