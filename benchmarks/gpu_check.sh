#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): on a machine with an NVIDIA GPU, make torch the CUDA build
# of the version requirements.txt pins, then run the CUDA tests, each encoder family's tiny model
# (benchmarks/family_check.py) and one epoch of train_bert's code and of the stock Trainer; prints
# JSON (and writes it to --out FILE). Arguments go to the Python part.
#
#   benchmarks/gpu_check.sh --out benchmarks/results_gpu_check.json
#   TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu126 benchmarks/gpu_check.sh   # another CUDA build
#   TORCH_WHEELS=/path/to/wheels benchmarks/gpu_check.sh    # offline: a directory holding the CUDA wheel
#   benchmarks/gpu_check.sh --dry-run                       # the plan only: installs and runs nothing
#
# Needs data/processed/{train,val,test}.jsonl (dvc repro preprocess) and the model in the HF cache
# (HF_HOME; HF_HUB_OFFLINE=1 where the machine has no internet).
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
    if [[ "$arg" == "--dry-run" || "$arg" == "-h" || "$arg" == "--help" ]]; then
        exec python3 -m benchmarks.gpu_check "$@"
    fi
done

torch_version="$(sed -n 's/^torch==\([0-9][0-9.]*\).*/\1/p' requirements.txt)"
if [[ -z "$torch_version" ]]; then
    echo "error: requirements.txt: no torch==X.Y.Z pin" >&2
    exit 2
fi
if ! python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() and torch.__version__.split('+')[0] == '$torch_version' else 1)" 2>/dev/null; then
    if [[ -n "${TORCH_WHEELS:-}" ]]; then
        python3 -m pip install --quiet --no-index --find-links "$TORCH_WHEELS" --force-reinstall --no-deps "torch==$torch_version"
    else
        python3 -m pip install --quiet --force-reinstall --no-deps "torch==$torch_version" \
            --index-url "${TORCH_CUDA_INDEX:-https://download.pytorch.org/whl/cu128}"
    fi
fi
python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
exec python3 -m benchmarks.gpu_check "$@"
