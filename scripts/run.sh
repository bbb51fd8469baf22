#!/usr/bin/env bash
# The main job: set up (idempotent) and chat with the embedded default model.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$here/scripts/setup.sh"
exec "$here/.venv/bin/glmkit" chat "$@"
