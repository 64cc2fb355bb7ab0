#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the one-shot demo on built-in data into demo_output/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh demo
exec .venv/bin/python scripts/demo.py "$@"
