#!/usr/bin/env bash
# Create .venv and install obliviate into it, with the exact versions the figures were made with
# (constraints.txt; pyproject.toml itself only asks for ranges). torch is installed first, because
# an unpinned torch pulls a multi-GB CUDA build. OBLIVIATE_TORCH_VERSION picks another torch (the
# constraints' torch pin is then dropped); OBLIVIATE_CONSTRAINTS= (empty) installs without constraints.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP=(.venv/bin/python -m pip install -q --disable-pip-version-check)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
"${PIP[@]}" --upgrade pip
CONSTRAINTS=${OBLIVIATE_CONSTRAINTS-constraints.txt}
pinned_torch=$( [ -n "$CONSTRAINTS" ] && sed -n 's/^torch==\([^[:space:]]*\).*/\1/p' "$CONSTRAINTS" || true)
TORCH=${OBLIVIATE_TORCH_VERSION:-${pinned_torch:-2.13.0}}
CONSTRAINT_ARGS=()
if [ -n "$CONSTRAINTS" ]; then
    if [ "$TORCH" != "$pinned_torch" ]; then
        # another torch than the figures': keep the other pins, drop torch's
        filtered=$(mktemp)
        trap 'rm -f "$filtered"' EXIT
        grep -v '^torch==' "$CONSTRAINTS" >"$filtered"
        CONSTRAINTS=$filtered
    fi
    CONSTRAINT_ARGS=(-c "$CONSTRAINTS")
fi
"${PIP[@]}" ${CONSTRAINT_ARGS[@]+"${CONSTRAINT_ARGS[@]}"} "torch==$TORCH"
"${PIP[@]}" ${CONSTRAINT_ARGS[@]+"${CONSTRAINT_ARGS[@]}"} -e ".[dev,embeddings]"
