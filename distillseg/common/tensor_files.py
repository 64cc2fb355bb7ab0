"""Writing tensors to a safetensors file like every other file the engine writes: through Python's ``open``.

safetensors' own writer creates its files readable by their owner only (mode 0600), while Python's ``open`` — the
manifest, JSON reports, label maps — gives what the user's umask allows (0644 under the usual 022). A model folder
with two modes is surprising (a shared group folder can read the manifest but not the weights), so weight and
checkpoint files are serialised in memory and written with ``open``: the umask's mode, ``0o666 & ~umask`` (keep
models private with a stricter umask, 077), and a full or read-only disk is an ``OSError`` like every other write
(safetensors' writer reports it as its own error type).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` (name -> tensor, moved to the CPU and made contiguous here) to ``path`` as safetensors."""
    from safetensors.torch import save

    data = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    with open(path, "wb") as handle:
        handle.write(data)
    return Path(path)
