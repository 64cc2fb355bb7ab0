#!/usr/bin/env bash
# Creates .venv beside this repository and installs the engine with its test and demo extras.
# torch is installed first and on its own, pinned, so that no dependency pulls a different (multi-GB CUDA) build;
# set TORCH_SPEC to choose another build (e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# shellcheck disable=SC2086
"${pip[@]}" install ${TORCH_SPEC:-torch==2.13.0}
"${pip[@]}" install -e ".[test,demo]"
