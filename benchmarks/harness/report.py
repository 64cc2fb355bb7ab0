"""What every benchmark report says about where and how it ran, its tables, and writing its files.

A report is three kinds of files in ``benchmarks/results/<name>/``: ``report.md`` (for people), ``results.json``
(every figure, for programs) and its PNG plots (``figures``). Each states the machine (CPU model, cores, RAM), the
software versions, the exact command that produced it and the load on the machine when it started: timings are
only clean on an otherwise idle machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from .paths import REPO, shown

PACKAGES = ("torch", "monai", "numpy", "nibabel", "scipy", "antspyx", "nilearn", "psutil")


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float:
    """Physical memory in GB."""
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def cpu_flags() -> list[str]:
    """The CPU features that decide which kernels torch uses (bf16 / AVX-512 / AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted(f for f in set(flags) if f in {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})


def machine() -> dict:
    """Where a run ran: CPU, cores, RAM, CPU flags, OS, GPU."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gb": ram_gb(), "cpu_flags": cpu_flags(),
            "os": platform.platform(), "gpu": gpu_name()}


def gpu_name() -> str | None:
    """The first CUDA device's name, None without one."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install is simply "no GPU" for a report
        return None


def software() -> dict:
    """Python's and the packages' versions, and the engine's commit (``-dirty`` with uncommitted changes)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        versions["distillseg_commit"] = subprocess.run(
            ["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True, text=True,
            check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        versions["distillseg_commit"] = None
    return versions


def module_command(module: str, *args) -> str:
    """How the README runs a benchmark module from the repository root, as one shell line."""
    return " ".join([".venv/bin/python", "-m", module, *map(shlex.quote, map(str, args))])


def invocation() -> str:
    """The command that is running now (``python -m benchmarks.<name> …``), as one shell line."""
    script = Path(sys.argv[0]).resolve()
    try:
        module = ".".join(script.relative_to(REPO).with_suffix("").parts)
    except ValueError:  # not a module of this repository (e.g. pytest): name the program as it was started
        return " ".join(shlex.quote(shown(a)) for a in sys.argv)
    return module_command(module, *sys.argv[1:])


def header(title: str, command: str, about: dict, extra: list[str] = ()) -> list[str]:
    """The first lines of a report: title, machine, software, exact command."""
    m, s = about["machine"], about["software"]
    soft = ", ".join(f"{k} {v}" for k, v in s.items() if v)
    lines = [f"# {title}", "",
             f"- **Machine**: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags']) or 'no AVX flags'}), "
             f"{m['ram_gb']} GB RAM, GPU: {m['gpu'] or 'none'}",
             f"- **Software**: {soft}",
             f"- **Command**: `{command}`",
             f"- **Date**: {about['date']}; load average when it started (1/5/15 min): "
             f"{', '.join(f'{v:.1f}' for v in about.get('load_average_at_start', []))} on {m['cores']} cores "
             "(timings are only clean when nothing else was running)"]
    return lines + [f"- {line}" for line in extra] + [""]


def about(command: str | None = None) -> dict:
    """Machine, software, command (default: this process's), date and load average at the start of a run."""
    return {"machine": machine(), "software": software(), "command": command or invocation(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average_at_start": list(os.getloadavg())}


def table(headers: list[str], rows: list[list]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def section(title: str, intro: str, headers: list[str], rows: list[list]) -> list[str]:
    """A report section: its heading, the paragraph that says what was measured and how, and its table."""
    return [f"## {title}", "", intro, ""] + table(headers, rows) + [""]


def fmt(value, digits: int = 3, unit: str = "") -> str:
    """A number for a table; "–" for missing/NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}{unit}"


def ratio(numerator, denominator, digits: int = 1) -> str:
    """``numerator / denominator`` as ``12.3×``; "–" when either is missing."""
    if not numerator or not denominator:
        return "–"
    return f"{numerator / denominator:.{digits}f}×"


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as indented JSON (``write_text``)."""
    write_text(path, json.dumps(data, indent=1, allow_nan=True, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` through a temporary file, so a crash never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
