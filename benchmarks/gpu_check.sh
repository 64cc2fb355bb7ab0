#!/usr/bin/env bash
# The GPU check in one command, from a fresh clone on a CUDA machine (under 8 minutes on one H100):
#
#   bash benchmarks/gpu_check.sh            # installs what is missing, then writes benchmarks/results/gpu/report.md
#   bash benchmarks/gpu_check.sh --smoke    # every step at toy sizes on the CPU (what CI runs)
#
# Other options go to `python -m benchmarks.gpu_check` (see its --help). The Python is $PYTHON, else .venv/bin/python,
# else a new .venv that also sees the machine's own packages (a GPU machine's preinstalled CUDA torch). Missing
# packages are installed with pip: the engine itself (editable) and psutil; torch with CUDA from TORCH_SPEC
# (default: torch 2.13.0 built for CUDA 12.8) when the installed torch sees no GPU.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
smoke=0
for argument in "$@"; do
    [ "$argument" = "--smoke" ] && smoke=1
done
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ ! -x .venv/bin/python ]; then
        python3 -m venv --system-site-packages .venv
    fi
    python=.venv/bin/python
fi
pip=("$python" -m pip install --disable-pip-version-check -q)
if [ "$smoke" = 0 ] && ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
    # shellcheck disable=SC2086
    "${pip[@]}" ${TORCH_SPEC:-torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128}
fi
if ! "$python" -c "import distillseg, monai, nibabel, safetensors, psutil" 2>/dev/null; then
    "${pip[@]}" -e . psutil
fi
exec "$python" -m benchmarks.gpu_check "$@"
