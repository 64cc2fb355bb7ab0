"""Writing tensors to a safetensors file with the same permissions as every other file the engine writes.

safetensors creates its files readable by their owner only (mode 0600), while Python's ``open`` — the manifest,
JSON reports, label maps — gives what the user's umask allows (0644 under the usual 022). A model folder with two
modes is surprising (a shared group folder can read the manifest but not the weights), so every weight and
checkpoint file gets the umask's mode too: ``0o666 & ~umask``. Keep models private with a stricter umask (077).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def _umask_mode() -> int:
    mask = os.umask(0)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return 0o666 & ~mask


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> Path:
    """Write ``tensors`` (name -> CPU-contiguous tensor) to ``path`` with safetensors; mode as ``open`` gives."""
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    os.chmod(path, _umask_mode())
    return Path(path)
