#!/usr/bin/env bash
# Set up .venv (see setup.sh) and run the test suite on CPU with one thread per process:
# two OpenMP threads on a busy 2-core machine spin-wait and can run 10-30x slower.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest -q "$@"
