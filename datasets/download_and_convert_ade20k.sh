#!/usr/bin/env bash
# Downloads ADE20K (SceneParsing, ADEChallengeData2016) and converts it to TFRecord shards
# for --dataset=ade20k: splits train (20,210) and val (2,000); 151 classes, 0 ignored.
#
# Usage:
#   datasets/download_and_convert_ade20k.sh [WORK_DIR]
#
# Download step (about 920 MB), skipped when the zip or its extracted folder is there.
# Without network, fetch the file elsewhere and put it in WORK_DIR (default ./ade20k):
#   http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip
set -euo pipefail

WORK_DIR="${1:-./ade20k}"
mkdir -p "${WORK_DIR}"
if [[ ! -d "${WORK_DIR}/ADEChallengeData2016" ]]; then
  ZIP="${WORK_DIR}/ADEChallengeData2016.zip"
  if [[ ! -f "${ZIP}" ]]; then
    echo "Downloading ADEChallengeData2016.zip"
    wget -nd -c -O "${ZIP}.part" "http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip"
    mv "${ZIP}.part" "${ZIP}"
  fi
  unzip -q "${ZIP}" -d "${WORK_DIR}"
fi

deeplab-build-ade20k \
  --ade20k_root="${WORK_DIR}" \
  --output_dir="${WORK_DIR}/tfrecord"
