"""Memory budgets: what is free on a device, and a job's budget within it.

A job given ``--max-memory`` (the Slicer module passes one) plans its work to fit: inference switches to a sliding
window, and a training that cannot fit stops before it starts with a sentence that says what to change.
"""

from __future__ import annotations

import os


def available_bytes(device) -> int:
    """Memory a job could still use on ``device`` (a ``torch.device``): free CUDA memory, or the system's available
    RAM (``system_available_bytes``)."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    return system_available_bytes()


def system_available_bytes() -> int:
    """The system's available RAM (no torch needed: file readers check a header's claims against it)."""
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


def budget_bytes(device, max_memory: int | None) -> int:
    """The smaller of ``--max-memory`` (bytes, if given; ``option_types.memory_size`` parses it) and what is
    available now."""
    available = available_bytes(device)
    return min(available, max_memory) if max_memory else available


def human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
