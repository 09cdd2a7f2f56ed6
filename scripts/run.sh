#!/usr/bin/env bash
# Set up (first run) and start the voicegui desktop app.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/voicegui "$@"
