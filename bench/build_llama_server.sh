#!/usr/bin/env bash
# Build llama.cpp's own llama-server once, from the llama.cpp sources vendored in the llama-cpp-python
# sdist that glmkit pins (the same llama.cpp glmkit runs), cached outside the repo. Prints the binary's
# path. bench/serve.py calls this when the binary is missing; ~10 minutes on 2 cores the first time.
#
#   bash bench/build_llama_server.sh            # -> ~/.cache/glmkit-bench/llama-server-0.3.36/bin/llama-server
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ver=$(grep -o '"llama-cpp-python==[^"]*"' "$here/pyproject.toml" | head -1 | tr -d '"' | cut -d= -f3)
cache="${GLMKIT_BENCH_CACHE:-$HOME/.cache/glmkit-bench}"
out="$cache/llama-server-$ver"
bin="$out/build/bin/llama-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
mkdir -p "$out"
pip=${PIP:-"$here/.venv/bin/pip"}
[ -x "$pip" ] || pip="python3 -m pip"
if [ ! -d "$out/src" ]; then
  echo "[llama-server] fetching the llama-cpp-python $ver sdist from PyPI" >&2
  $pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$out/sdist" >&2
  mkdir -p "$out/src.tmp"
  tar xzf "$out/sdist/llama_cpp_python-$ver.tar.gz" -C "$out/src.tmp"
  mv "$out/src.tmp/llama_cpp_python-$ver/vendor/llama.cpp" "$out/src"
  rm -rf "$out/src.tmp"
fi
echo "[llama-server] building (cmake target llama-server, Release, no web UI, no TLS)" >&2
# The same CPU flags as llama-cpp-python's default build (GGML_NATIVE); no UI assets, which would be fetched.
cmake -S "$out/src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$out/build" --target llama-server -j "$(nproc)" >&2
echo "$bin"
