"""Memory budgets: what is free on a device, and sizes written the way people write them ("6G", "512M").

A job given ``--max-memory`` (the Slicer module passes one) plans its work to fit: inference switches to a sliding
window, and a training that cannot fit stops before it starts with a sentence that says what to change.
"""

from __future__ import annotations

import os
import re

import torch

from distillseg.contract.errors import UserError

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30,
          "T": 2**40, "TB": 2**40}


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit K/M/G/T (binary, case-insensitive), e.g. ``6G``."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?[bB]?)\s*", str(text))
    if not match:
        raise UserError(f"'{text}' is not a memory size; write e.g. 6G, 1.5G or 800M.")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def available_bytes(device: torch.device) -> int:
    """Memory a job could still use on ``device``: free CUDA memory, or the system's available RAM."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # last resort on systems without /proc and psutil: total physical memory
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def budget_bytes(device: torch.device, max_memory: str | None) -> int:
    """The smaller of ``--max-memory`` (if given) and what is available now."""
    available = available_bytes(device)
    return min(available, parse_size(max_memory)) if max_memory else available


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
