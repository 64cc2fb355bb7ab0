#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the whole test suite on the CPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh test
# Two pytest processes, each taking whole test files (module fixtures are made once): most tests wait on engine
# child processes, so on CI's 2 cores this ran 608 tests in 17 min 43 s against about 21 min in one process. Each
# worker and each engine child it starts uses one torch thread (Testing/conftest.py): 640 tests then took 13-14 min.
# `bash scripts/test.sh -n 0` runs them in one process.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile "$@"
