#!/usr/bin/env bash
# Set up (first run) and run every check: ruff, the import-linter contract, the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
.venv/bin/ruff check voicegui tests scripts packaging
.venv/bin/lint-imports
# pytest exits non-zero (5) when it collects nothing, so an empty run cannot pass.
exec .venv/bin/python -m pytest -q "$@"
