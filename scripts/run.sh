#!/usr/bin/env bash
# The main job: set up (idempotent), then serve the embedded default model: the OpenAI-compatible API at
# /v1 and the web console at /. The console's URL is printed once the server is up.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/glmkit" serve "$@"
