#!/usr/bin/env bash
# Serve deeplab-export SavedModels with TF Serving's Docker image: gRPC on 8500, REST on 8501.
#
#   deeplab-export --checkpoint=train_logdir --export_dir=exports          # exports/deeplab/1/
#   export/serve.sh exports deeplab                                       # one model
#   MODELS_CONFIG=export/models.config export/serve.sh exports            # models.config
#   python export/client.py --image=photo.jpg --output=seg.png --rest=localhost:8501
#
# Arguments: EXPORT_DIR (default: exports), MODEL_NAME (default: deeplab). With
# MODELS_CONFIG set, EXPORT_DIR is mounted at /models and the config file chooses the models
# (its base_path entries are /models/<model_name>).
set -euo pipefail

EXPORT_DIR="$(cd "${1:-exports}" && pwd)"
MODEL_NAME="${2:-deeplab}"
IMAGE="${TF_SERVING_IMAGE:-tensorflow/serving:latest}"

if [[ -n "${MODELS_CONFIG:-}" ]]; then
  CONFIG="$(cd "$(dirname "$MODELS_CONFIG")" && pwd)/$(basename "$MODELS_CONFIG")"
  exec docker run --rm -p 8500:8500 -p 8501:8501 \
    --mount "type=bind,source=${EXPORT_DIR},target=/models,readonly" \
    --mount "type=bind,source=${CONFIG},target=/config/models.config,readonly" \
    -t "$IMAGE" \
    --model_config_file=/config/models.config --model_config_file_poll_wait_seconds=60
fi

if [[ ! -d "${EXPORT_DIR}/${MODEL_NAME}" ]]; then
  echo "error: ${EXPORT_DIR}/${MODEL_NAME} does not exist (run deeplab-export first)" >&2
  exit 1
fi
exec docker run --rm -p 8500:8500 -p 8501:8501 \
  --mount "type=bind,source=${EXPORT_DIR}/${MODEL_NAME},target=/models/${MODEL_NAME},readonly" \
  -e MODEL_NAME="${MODEL_NAME}" \
  -t "$IMAGE"
