#!/bin/bash
# A prompt3d training run on a lent GPU machine (the workplace's `device` tool), prepared here
# and run there in two calls on one warm machine. Why two: a call carries at most 64 MiB with
# the repository, the repository's weights alone are 60 MiB, and SimpleITK's wheel (which
# TorchIO, the data layer's augmentation, needs) is 53 MB.
#
#   here:    bash tools/device_train_prompt3d.sh prepare
#            (writes .device/: SimpleITK's wheel, the other wheels the trainer needs that the
#            machine's image lacks, the training structures as one pack; and takes every
#            weights file but prompt3d.pt out of the working tree)
#   call 1:  bash tools/device_train_prompt3d.sh install-sitk          carry [".device/sitk"]
#   call 2:  bash tools/device_train_prompt3d.sh train [trainer options]
#                                                   carry [".device/whl", ".device/pack.npz"]
#            (within the machine's 30 s warm window after call 1; timeout_s 600)
#   here:    bash tools/device_train_prompt3d.sh restore   (git checkout of the weights)
#
# `train` runs `interactiveseg train-prompt3d` on the GPU with the pack, one sample worker
# per core but two, for MINUTES (default 7) minutes, starting from the shipped network, and
# writes the checkpoint to $OUT in parts of 15 MiB (a file that comes back is at most 16 MiB):
# `cat prompt3d.pt.part* > prompt3d.pt` joins them. Options after `train` go to the trainer
# and override the defaults below (argparse keeps the last). Off the machine, DEVICE=cpu
# INSTALL=0 PYTHON=.venv/bin/python OUT=/tmp/out runs the same on this CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEEL_TAGS=(--only-binary=:all: --python-version 3.12 --implementation cp
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# what the trainer imports that the machine's image (KINDS.md's package list) does not hold
WHEELS=(Deprecated connected-components-3d edt monai nibabel pydicom pynrrd torchio)

version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }

case "${1:-}" in
  prepare)
    grep -qx '/.device/' .git/info/exclude || echo '/.device/' >> .git/info/exclude
    rm -rf .device && mkdir -p .device/sitk .device/whl
    "$PY" -m pip download -q --no-deps "${WHEEL_TAGS[@]}" -d .device/sitk "simpleitk==$(version simpleitk)"
    for w in "${WHEELS[@]}"; do
      "$PY" -m pip download -q --no-deps "${WHEEL_TAGS[@]}" -d .device/whl "$w==$(version "$w")"
    done
    interactiveseg pack-training-data --out .device/pack.npz
    git ls-files 'Resources/Models/*.pt' | grep -v '^Resources/Models/prompt3d.pt$' | xargs rm -f
    du -sh .device/* ;;
  install-sitk)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target .device/site .device/sitk/*.whl ;;
  train)
    shift
    if [ "${INSTALL:-1}" = 1 ]; then
      "$PY" -m pip install -q --no-index --no-deps --no-compile --target .device/site .device/whl/*.whl
    fi
    export PYTHONPATH="$PWD:$PWD/.device/site" PYTHONUNBUFFERED=1
    mkdir -p .device/run
    nvidia-smi -L 2>/dev/null || true
    workers=$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))
    "$PY" -m InteractiveSegLib.cli train-prompt3d --dataset .device/pack.npz --device "${DEVICE:-cuda}" \
      --init Resources/Models/prompt3d.pt --workers "$workers" --threads 2 --minutes "${MINUTES:-7}" \
      --batch 8 --lr 5e-4 --lr-drop-at 0 --save-every 100 --log-every 25 --out .device/run/prompt3d.pt "$@" \
      2>&1 | tee .device/train.log
    mkdir -p "$OUT"
    split -b 15M -d .device/run/prompt3d.pt "$OUT/prompt3d.pt.part"
    cp .device/train.log "$OUT/" ;;
  restore)
    git checkout -- Resources/Models ;;
  *)
    echo "usage: $0 prepare | install-sitk | train [trainer options] | restore" >&2
    exit 2 ;;
esac
