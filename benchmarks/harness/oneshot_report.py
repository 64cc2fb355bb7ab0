"""The one-shot benchmarks' report tables: scores per method and structure, the main method table, our runs, the
ANTs runs, and the reference ours is compared with.

A *method result* is a dict::

    {"name": "SyN (40, 20) @ 2 mm", "kind": "peer" | "ours" | "floor", "resolution_mm": 2.0,
     "cases": [{"case": "...", "structures": {"17": {"dice": .., "hd95": .., "name": ..}, ...}}, ...],
     "segment": {"seconds_per_volume": .., "peak_rss_mb": .., ...} | None,
     "train": {"seconds": .., "peak_rss_mb": .., ...} | None}
"""

from __future__ import annotations

import json
import math

import numpy as np

from .report import fmt, ratio, table


def per_structure(method: dict, metric: str = "dice") -> dict[str, float]:
    """Structure -> mean of ``metric`` over the method's cases (NaNs ignored)."""
    values: dict[str, list[float]] = {}
    for case in method["cases"]:
        for key, entry in case["structures"].items():
            values.setdefault(key, []).append(entry.get(metric, math.nan))
    return {k: nanmean(v) for k, v in values.items()}


def nanmean(values) -> float:
    """Mean of the finite values; NaN when there is none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summary(method: dict) -> dict:
    """Mean ± sd over structures of the per-structure Dice (averaged over cases), mean HD95."""
    dice = [v for v in per_structure(method, "dice").values() if math.isfinite(v)]
    hd95 = [v for v in per_structure(method, "hd95").values() if math.isfinite(v)]
    return {"mean_dice": float(np.mean(dice)) if dice else math.nan,
            "sd_dice": float(np.std(dice)) if dice else math.nan,
            "mean_hd95": float(np.mean(hd95)) if hd95 else math.nan}


def dice_series(methods: list[dict]) -> dict[str, list[float]]:
    """Method (without the ``ours: `` prefix) -> its per-structure mean Dice, for the report's box plot."""
    return {m["name"].replace("ours: ", ""): list(per_structure(m).values()) for m in methods}


def stronger_syn(methods: list[dict], spacing: float) -> dict | None:
    """The ANTs SyN run at ``spacing`` mm with the higher mean Dice (the reference ours is compared with)."""
    candidates = [m for m in methods if m["kind"] == "peer" and "SyN" in m["name"] and m["resolution_mm"] == spacing]
    return max(candidates, key=lambda m: summary(m)["mean_dice"]) if candidates else None


METHOD_HEADERS = ["method", "resolution", "Dice mean ± sd", "Δ Dice vs ref", "HD95 mm (mean)",
                  "segment time / volume", "speed-up vs ref", "speed-up vs fine ref", "peak RSS (segment)",
                  "training"]


def method_rows(methods: list[dict], reference: dict | None, fine_reference: dict | None) -> list[list]:
    """Rows of the main table: Dice mean ± sd, Δ vs the reference, HD95, time, the time ratios, memory, training."""
    ref_summary = summary(reference) if reference else None
    ref_seconds = reference["segment"]["seconds_per_volume"] if reference and reference.get("segment") else None
    fine_seconds = (fine_reference["segment"]["seconds_per_volume"]
                    if fine_reference and fine_reference.get("segment") else None)
    rows = []
    for method in methods:
        s = summary(method)
        seg = method.get("segment") or {}
        seconds = seg.get("seconds_per_volume")
        train = method.get("train") or {}
        delta = (f"{s['mean_dice'] - ref_summary['mean_dice']:+.3f}" if ref_summary and method is not reference
                 else "–")
        rows.append([
            method["name"], fmt(method.get("resolution_mm"), 1, " mm"),
            f"{fmt(s['mean_dice'])} ± {fmt(s['sd_dice'])}", delta, fmt(s["mean_hd95"], 2),
            fmt(seconds, 1, " s"),
            ratio(ref_seconds, seconds) if method is not reference else "1×",
            ratio(fine_seconds, seconds) if method is not fine_reference else "1×",
            fmt(seg.get("peak_rss_mb"), 0, " MB") if seg else "–",
            fmt(train.get("seconds", 0) / 60, 1, " min") if train else "–",
        ])
    return rows


def structure_table(methods: list[dict]) -> list[str]:
    """Per-structure Dice (mean over cases): one row per structure, one column per method."""
    keys = list(methods[0]["cases"][0]["structures"])
    names = {k: methods[0]["cases"][0]["structures"][k].get("name", k) for k in keys}
    columns = [per_structure(m) for m in methods]
    rows = [[f"{names[k]} ({k})", *[fmt(c.get(k)) for c in columns]] for k in keys]
    return table(["structure", *[m["name"] for m in methods]], rows)


def ours_table(methods: list[dict]) -> list[str]:
    """Our runs: working grid, training time (per stage, per step), training memory, precision, segment time."""
    rows = []
    for m in methods:
        if m["kind"] != "ours":
            continue
        t, seg = m.get("train") or {}, m["segment"]
        rows.append([m["name"], "×".join(map(str, t["working_grid"])) if t else "(the full model)",
                     fmt(t.get("seconds", 0) / 60, 1, " min") if t else "–",
                     ", ".join(f"{k} {v:.0f} s" for k, v in t.get("stage_seconds", {}).items()) if t else "–",
                     f"{fmt(t.get('augmenter_step_s'), 2, ' s')} / {fmt(t.get('distill_step_s'), 2, ' s')}" if t
                     else "–",
                     fmt(t.get("peak_rss_mb"), 0, " MB") if t else "–", t.get("precision", "–") if t else "–",
                     fmt(seg["in_process_seconds_per_volume"], 1, " s"),
                     fmt(m["max_dice_difference_segment_vs_evaluate"], 4)])
    return ["Training and segmenting through the real CLI (`distillseg oneshot train` / `segment` / `evaluate`). "
            "Segment in-process = the engine's own per-volume time (without process start and model loading); "
            "the last column checks that `segment`'s files and `evaluate` score the same.", ""] + table(
        ["method", "working grid", "training", "stage seconds", "step time (augmenter / student, median)",
         "peak RSS (training)", "precision", "segment in-process", "max ΔDice segment vs evaluate"], rows)


def budget_line(train: dict | None, settings: dict, unit: str) -> str:
    """The report line on our training budget: the iterations of ``train`` (ours' full method) ``unit``, and
    whether they are the CLI's defaults."""
    budget = (f"augmenter {train['augmenter_iterations']} + student {train['iterations']} {unit}" if train
              else "ours not run")
    origin = "CLI defaults" if settings["budget_is_default"] else "set by the options in the command"
    return f"**Training budget of ours**: {budget} ({origin})"


def ants_table(methods: list[dict]) -> list[str]:
    """ANTs runs: settings, registration time alone and the whole process, cached or not."""
    rows = [[m["name"], json.dumps(m["settings"]), fmt(m["segment"]["registration_seconds"], 1, " s"),
             fmt(m["segment"]["seconds_per_volume"], 1, " s"), fmt(m["segment"]["peak_rss_mb"], 0, " MB"),
             "yes (cached)" if m.get("reused") else "no"]
            for m in methods if m["kind"] == "peer"]
    return ["Registration at the stated resolution (both images resampled linearly), atlas labels warped with "
            "`genericLabel` onto the test scan's own grid; threads = `ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`.", ""] + \
        table(["method", "settings", "registration alone", "whole process", "peak RSS", "reused"], rows)
