#!/usr/bin/env bash
# Creates .venv beside this repository and installs the engine with the extras one of the two README commands
# needs: `bash scripts/setup.sh demo` (the engine + matplotlib and nilearn) or `bash scripts/setup.sh test` (the
# engine + pytest, hypothesis, slicer-core and VTK for the Slicer glue tests: about 0.8 GB more). Python 3.10 or
# later (CI runs 3.11, Slicer 5.10 has 3.12; PYTHON=python3.x picks one).
#
# torch is installed first and on its own, pinned, so that no dependency pulls another build. The pin resolves to
# what PyPI serves for this platform: on Linux x86_64 that is the CUDA build (about 2.5 GB with its NVIDIA
# libraries; it runs on the CPU too), on macOS and Windows the CPU build. For the smaller CPU-only build on Linux:
#   TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" bash scripts/setup.sh demo
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
extras="${1:-test}"
case "$extras" in
    demo|test) ;;
    *) echo "usage: bash scripts/setup.sh [demo|test]" >&2; exit 2 ;;
esac
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# shellcheck disable=SC2086
"${pip[@]}" install ${TORCH_SPEC:-torch==2.13.0}
"${pip[@]}" install -e ".[$extras]"
