#!/usr/bin/env bash
# Create .venv and install obliviate into it. torch is installed first and pinned, because an
# unpinned torch pulls a multi-GB CUDA build; pyproject.toml itself only asks for a range.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==${OBLIVIATE_TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,embeddings]"
