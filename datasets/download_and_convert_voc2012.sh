#!/usr/bin/env bash
# Downloads PASCAL VOC 2012 and (optionally) SBD, and converts them to TFRecord shards for
# --dataset=pascal_voc_seg: splits train (1,464), val (1,449), trainval (2,913) and, with SBD,
# train_aug (10,582).
#
# Usage:
#   datasets/download_and_convert_voc2012.sh [WORK_DIR] [--no_sbd]
#
# Layout afterwards (WORK_DIR defaults to ./pascal_voc_seg):
#   WORK_DIR/VOCdevkit/VOC2012/...        the raw VOC 2012 release
#   WORK_DIR/benchmark_RELEASE/dataset/... the raw SBD release
#   WORK_DIR/tfrecord/                    shards + manifest.json: pass as --dataset_dir
#
# Download step (about 2 GB + 1.4 GB), skipped for what is already there (the archive or its
# extracted folder). Without network, fetch these two files elsewhere and put them in WORK_DIR:
#   http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar
#   http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz
# The palette PNG labels are read as class indices by the converter: the original's separate
# remove_gt_colormap step is not needed.
set -euo pipefail

WORK_DIR="${1:-./pascal_voc_seg}"
USE_SBD=1
[[ "${2:-}" == "--no_sbd" ]] && USE_SBD=0
mkdir -p "${WORK_DIR}"

fetch() {  # fetch URL FILE: download unless present.
  if [[ ! -f "$2" ]]; then
    echo "Downloading $1"
    wget -nd -c -O "$2.part" "$1" && mv "$2.part" "$2"
  fi
}

if [[ ! -d "${WORK_DIR}/VOCdevkit/VOC2012" ]]; then
  VOC_TAR="${WORK_DIR}/VOCtrainval_11-May-2012.tar"
  fetch "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar" "${VOC_TAR}"
  tar -xf "${VOC_TAR}" -C "${WORK_DIR}"
fi

SBD_FLAG=()
if [[ "${USE_SBD}" == 1 ]]; then
  if [[ ! -d "${WORK_DIR}/benchmark_RELEASE" ]]; then
    SBD_TGZ="${WORK_DIR}/benchmark.tgz"
    fetch "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz" "${SBD_TGZ}"
    tar -xzf "${SBD_TGZ}" -C "${WORK_DIR}"
  fi
  SBD_FLAG=(--sbd_root="${WORK_DIR}/benchmark_RELEASE")
fi

deeplab-build-voc2012 \
  --voc_root="${WORK_DIR}" \
  ${SBD_FLAG[@]+"${SBD_FLAG[@]}"} \
  --output_dir="${WORK_DIR}/tfrecord"
