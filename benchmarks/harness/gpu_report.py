"""The GPU check's report (``python -m benchmarks.gpu_check``): training, segmentation (cold command and warm
worker) and DDP tables, and whether the run stayed under its 8-minute target."""

from __future__ import annotations

from pathlib import Path

from .report import fmt, header, section, write_json, write_text

TARGET_S = 480.0  # issue 20: the whole check under 8 minutes on one H100


def _gb(megabytes) -> str:
    return fmt(megabytes / 1024 if megabytes is not None else None, 2, " GB")


def _train_rows(rows: list[dict]) -> list[list]:
    return [[r["resolution"], "×".join(map(str, r.get("working_grid", []))) or "–",
             ", ".join(f"{k} {v:g} s" for k, v in r["engine"].get("seconds", {}).items()) or "–",
             fmt(r["augmenter_step_s"], 3, " s"), fmt(r["distill_step_s"], 3, " s"), fmt(r["seconds"], 1, " s"),
             _gb(r["engine"].get("peak_memory_mb")), fmt(r.get("mean_dice"), 3),
             "ok" if r["ok"] else f"failed: {r['error']}"] for r in rows]


def _segment_rows(rows: list[dict]) -> list[list]:
    return [[r["case"], fmt(r["cold_seconds"], 2, " s"), fmt(r["cold_in_process_seconds"], 2, " s"),
             _gb(r["cold_peak_gpu_mb"]), fmt(r["warm_seconds"], 2, " s"), fmt(r["warm_in_process_seconds"], 2, " s"),
             _gb(r["worker_peak_gpu_mb"]), _gb(r["worker_peak_rss_mb"])] for r in rows]


def _ddp_rows(rows: list[dict]) -> list[list]:
    single = next((r["samples_per_s"] for r in rows if r["launcher"].startswith("one process")), None)
    return [[r["processes"], r["launcher"], fmt(r["augmenter_step_s"], 3, " s"), fmt(r["distill_step_s"], 3, " s"),
             fmt(r["samples_per_s"], 2), fmt(r["samples_per_s"] / single, 2, "×") if r["samples_per_s"] and single
             else "–", "ok" if r["ok"] else f"failed: {r['error']}"] for r in rows]


def markdown(result: dict) -> str:
    settings = result["settings"]
    extra = [f"**Device**: {settings['device']}, {settings['gpus']} CUDA GPU(s) seen by torch",
             f"**Total wall time**: {fmt(result.get('total_seconds'), 0, ' s')} (target on one H100: under "
             f"{TARGET_S:g} s)"]
    if settings["smoke"]:
        extra.insert(0, "**SMOKE RUN on the CPU: toy sizes and one or two iterations, to check that the script "
                        "runs. Its figures mean nothing; no GPU figure comes from it.**")
    if result.get("skipped"):
        extra.append(f"**Not run** (over the {settings['budget_s']:g} s budget): {', '.join(result['skipped'])}")
    lines = header("GPU check (OneShotSeg)", result["about"]["command"], result["about"], extra)
    lines += section(
        "1. Training the brain model (OASIS → vxm)",
        "`distillseg oneshot train --device cuda --precision auto` (AMP). Step times are medians after the first step; "
        "peak memory is the engine's own figure: the CUDA allocator's peak on a GPU (the process's peak RSS in a CPU "
        "smoke run); Dice: `oneshot evaluate` on the vxm scan, 29 structures.",
        ["resolution", "working grid", "stages", "augmenter step", "student step", "whole command",
         "peak memory", "mean Dice", "status"], _train_rows(result["train"]))
    lines += section(
        "2. Segmentation: cold command and warm worker",
        "Cold: the whole `distillseg oneshot segment` process. Warm: `distillseg worker`'s second request with the "
        "same model (the first loads it), from request to `done`; for the CT the second request is the same scan "
        "again. Peak memory: the engine's own figure as in §1 (the worker's over both requests); the worker's peak "
        "RSS is its process's.",
        ["case", "cold command", "cold in-process", "cold peak memory", "warm worker", "warm in-process",
         "worker peak memory", "worker peak RSS"], _segment_rows(result["segment"]))
    lines += section(
        "3. DDP throughput",
        "The 2 mm training, one sample per process: `torchrun --nproc_per_node=N` on the N GPUs present (NCCL; gloo "
        "on the CPU) against §1's 2 mm training in one process. Scaling = samples/s relative to one process.",
        ["processes", "launcher", "augmenter step", "student step", "samples/s", "scaling", "status"],
        _ddp_rows(result["ddp"]))
    return "\n".join(lines)


def write_report(result: dict, out: Path) -> None:
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(result))
