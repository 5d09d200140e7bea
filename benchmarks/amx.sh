#!/usr/bin/env bash
# The CPU-precision figures (float32 / bfloat16 / int8, SavedModel vs frozen graph) in one
# command, for a machine where they were never taken (an Intel Xeon with AMX: amx_bf16,
# amx_int8). Every section prints the machine line (CPU, avx512f / avx512_bf16 / AMX, load
# average) and runs each contender in its own process, alternating rounds:
#   1. inference, xception_65 OS16 + decoder, batch 1, against the original's export_model.py
#      graph (rebuilt TF1 style, same weights): float32 default path, frozen graph and
#      SavedModel; bfloat16 (TF, SavedModel, OpenVINO); int8 (LiteRT, OpenVINO)
#   2. argmax agreement with float32 on the demo's validation scenes (a trained model; the
#      demo is trained first if demo_output/train has no checkpoint) and on random weights
#   3. training step, the Trainer against the original's graph, float32 and bfloat16
#   4. bfloat16 step formulations (batch norm on float32 casts or on bfloat16, depthwise
#      layers in float32), also for mobilenet_v2, and the op profile with oneDNN's
#      primitive per op (ONEDNN_VERBOSE)
#   5. the learning proof in float32 and bfloat16 (slow test: same mIoU within 1 point)
#
#   benchmarks/amx.sh            # the full run, 513x513 (1-2 h on 2 cores; four xception_65
#                                # processes at once: 5-7 GB each)
#   benchmarks/amx.sh --quick    # 65x65, any CPU (16 GB free), about 20 min: checks that it runs
# Logs: bench_output/amx/<section>.log (and .json where the tool writes one).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
BIN="$(dirname "$PYTHON")"
QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "amx.sh: unknown argument '$arg' (expected --quick or nothing)" >&2; exit 2 ;;
  esac
done
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
OUT=bench_output/amx
mkdir -p "$OUT"
if [ "$QUICK" = 1 ]; then
  SIZE=65; ROUNDS=2; STEPS_ROUNDS=2; SCENES=4
else
  SIZE=513; ROUNDS=5; STEPS_ROUNDS=5; SCENES=8
fi
X65=(--flagfile=configs/pascal_voc_seg/xception65_os16.flags "--crop_size=$SIZE,$SIZE")
FAILED=()

run() {  # run NAME COMMAND...: logged to $OUT/NAME.log, the tables echoed
  local name="$1"; shift
  echo "== $name: $*"
  "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  grep -E '^(cpu:|kernels:|--(inference_precision|mixed_precision)=auto|\||peak|load average|xception|mobilenet|oneDNN primitives| +[0-9.]+ s )' \
    "$OUT/$name.log" || true
  if [ "$rc" != 0 ]; then FAILED+=("$name (exit $rc; see $OUT/$name.log)"); echo "   failed: exit $rc"; fi
}

grep -o -w -E 'amx_bf16|amx_int8|avx512_bf16|avx512_fp16' /proc/cpuinfo | sort -u | tr '\n' ' '
echo

# 1. Inference against the original's graph. Two contenders per comparison: with the
#    reference tf_function and the original, four xception_65 processes at once (memory).
run original_graph "$PYTHON" benchmarks/original_frozen_graph.py --output="$OUT/original.pb" \
  --crop_size="$SIZE,$SIZE"
for group in "tf_frozen,saved_model" "tf_folded,tf_folded_bfloat16" \
             "saved_model_bfloat16,openvino_bfloat16" "tflite,tflite_int8" \
             "openvino_int8,openvino_tflite_int8"; do
  name="inference_${group%%,*}"
  run "$name" "$BIN/deeplab-bench" "${X65[@]}" --contenders="$group" \
    --compare_frozen_graph="$OUT/original.pb" --compare_rounds="$ROUNDS" \
    --output_json="$OUT/$name.json"
done

# 2. Agreement with float32 (a trained model, then random weights: the pessimistic figure).
if ! ls demo_output/train/model.ckpt-*.index > /dev/null 2>&1; then
  run demo "$PYTHON" -m deeplab_tf.demo --workdir=demo_output
fi
run agreement_demo "$PYTHON" benchmarks/precision_agreement.py --checkpoint_dir=demo_output/train \
  --dataset_dir=demo_output/tfrecord --output_json="$OUT/agreement_demo.json"
run agreement_random "$PYTHON" benchmarks/precision_agreement.py --random_weights \
  --model_variant=xception_65 --num_classes=21 --scenes="$SCENES" --size="$SIZE" \
  --variants=bfloat16,openvino_bfloat16 --output_json="$OUT/agreement_random.json"

# 3. Training step beside the original's graph.
for precision in float32 bfloat16; do
  run "train_side_by_side_$precision" "$PYTHON" benchmarks/train_side_by_side.py \
    --crop_size="$SIZE" --batch_size=2 --rounds="$STEPS_ROUNDS" --precision="$precision"
done

# 4. bfloat16 formulations of the step, and where its time goes.
run train_variants_xception_65 "$PYTHON" benchmarks/train_step_variants.py \
  --model_variant=xception_65 --crop_size="$SIZE" --batch_size=2 --rounds="$STEPS_ROUNDS" \
  --variants=float32,bfloat16,bfloat16_bn_native,bfloat16_depthwise_float32
run train_variants_mobilenet_v2 "$PYTHON" benchmarks/train_step_variants.py \
  --model_variant=mobilenet_v2 --crop_size="$SIZE" --batch_size=2 --rounds="$STEPS_ROUNDS" \
  --variants=float32,bfloat16,bfloat16_depthwise_float32
run profile_train_bfloat16 "$PYTHON" benchmarks/profile_train.py --crop_size="$SIZE" \
  --precision=bfloat16 --onednn_verbose

# 5. Training quality in bfloat16 (skipped by --quick: it trains for minutes twice).
if [ "$QUICK" = 0 ]; then
  run learning_proof "$PYTHON" -m pytest -q -s -m slow tests/test_train_learning.py
fi

echo "logs: $OUT/"
if [ "${#FAILED[@]}" != 0 ]; then
  printf 'failed: %s\n' "${FAILED[@]}"
  exit 1
fi
