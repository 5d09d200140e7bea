#!/usr/bin/env bash
# Converts Cityscapes to TFRecord shards for --dataset=cityscapes: splits train_fine (2,975)
# and val_fine (500); add e.g. --splits=train_fine,val_fine,test_fine,train_coarse.
#
# Usage:
#   datasets/download_and_convert_cityscapes.sh [WORK_DIR] [extra deeplab-build-cityscapes flags]
#
# Download step: Cityscapes needs a (free) account, so it is not downloaded by this script.
# Log in at https://www.cityscapes-dataset.com/downloads/ and put these files in WORK_DIR
# (default ./cityscapes):
#   leftImg8bit_trainvaltest.zip   (11 GB)  images
#   gtFine_trainvaltest.zip        (241 MB) fine annotations
#   optional, for the coarse splits: leftImg8bit_trainextra.zip, gtCoarse.zip
# (The cityscapesScripts package's `csDownload` tool can fetch them with your credentials.)
# Only *_gtFine_labelIds.png are needed: the converter maps label ids to the 19 train ids
# itself, so cityscapesScripts' createTrainIdLabelImgs step is not needed.
set -euo pipefail

WORK_DIR="${1:-./cityscapes}"
shift || true
cd "${WORK_DIR}"

for archive in leftImg8bit_trainvaltest.zip gtFine_trainvaltest.zip \
               leftImg8bit_trainextra.zip gtCoarse.zip; do
  folder="${archive%%_*}"; folder="${folder%.zip}"   # leftImg8bit, gtFine, gtCoarse
  if [[ -f "${archive}" ]]; then
    unzip -q -n "${archive}"
  elif [[ ! -d "${folder}" && "${archive}" == *trainvaltest.zip ]]; then
    echo "Missing ${WORK_DIR}/${archive}: download it from https://www.cityscapes-dataset.com/downloads/" >&2
    exit 1
  fi
done

deeplab-build-cityscapes \
  --cityscapes_root=. \
  --output_dir=tfrecord \
  "$@"
