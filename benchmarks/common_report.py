"""What every benchmark report says about where and how it ran, and the pieces its markdown and plots share.

A report is three files in ``benchmarks/results/<name>/``: ``report.md`` (for people), ``results.json`` (every
figure, for programs) and one or more PNG plots. Each states the machine (CPU model, cores, RAM), the software
versions and the exact command that produced it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PACKAGES = ("torch", "monai", "numpy", "nibabel", "scipy", "antspyx", "nilearn", "psutil")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float:
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
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "ram_gb": ram_gb(), "cpu_flags": cpu_flags(),
            "os": platform.platform(), "gpu": gpu_name()}


def gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install is simply "no GPU" for a report
        return None


def software() -> dict:
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


def invocation() -> str:
    """The command that is running now, as one shell line relative to the repository."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return " ".join([".venv/bin/python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


def header(title: str, command: str, about: dict, extra: list[str] = ()) -> list[str]:
    """The first lines of a report: title, machine, software, exact command."""
    m, s = about["machine"], about["software"]
    soft = ", ".join(f"{k} {v}" for k, v in s.items() if v)
    lines = [f"# {title}", "",
             f"- **Machine**: {m['cpu']}, {m['cores']} cores ({', '.join(m['cpu_flags']) or 'no AVX flags'}), "
             f"{m['ram_gb']} GB RAM, GPU: {m['gpu'] or 'none'}",
             f"- **Software**: {soft}",
             f"- **Command** (run under the team's CPU lock): `flock /work/heavy.lock {command}`",
             f"- **Date**: {about['date']}; load average when it started (1/5/15 min): "
             f"{', '.join(f'{v:.1f}' for v in about.get('load_average_at_start', []))} on {m['cores']} cores "
             "(timings are only clean when nothing else was running)"]
    return lines + [f"- {line}" for line in extra] + [""]


def about(command: str | None = None) -> dict:
    import time

    return {"machine": machine(), "software": software(), "command": command or invocation(),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), "load_average_at_start": list(os.getloadavg())}


def table(headers: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


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
    """Write ``data`` as indented JSON through a temporary file, so a crash never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1, allow_nan=True, default=str) + "\n", encoding="utf-8")
    temporary.replace(path)


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def boxplot(path: Path, series: dict[str, list[float]], title: str, ylabel: str = "Dice") -> None:
    """One box per method (``series``: method -> per-structure values), points overlaid, means marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(series)
    fig, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2))
    data = [[v for v in series[n] if v == v] for n in names]
    axis.boxplot(data, showmeans=True, widths=0.6)
    for index, values in enumerate(data, 1):
        jitter = [index + 0.18 * ((k * 7919) % 11 / 10 - 0.5) for k in range(len(values))]
        axis.scatter(jitter, values, s=8, alpha=0.5, color="tab:blue", zorder=3)
    axis.set_xticks(range(1, len(names) + 1), names, rotation=25, ha="right", fontsize=8)
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
