"""Seed statistics for the one-shot protocol benchmark: each variant trained with several seeds, summarised as the
seed mean and the seed spread (min–max), compared pairwise with the default configuration, and a difference smaller
than the seed spread called a tie (one seed has no spread, so nothing is called from it).

Why min–max and not a standard deviation: with three seeds an SD is itself a noisy number; the range is what a
reader can check against the per-seed values in ``results.json``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .figures import pyplot, save
from .oneshot_report import per_structure, summary
from .report import fmt, table


def spread(values: list[float]) -> dict:
    """Mean, min, max and count of the finite ``values`` (NaN fields when there is none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": math.nan, "min": math.nan, "max": math.nan, "n": 0, "values": []}
    return {"mean": float(np.mean(finite)), "min": min(finite), "max": max(finite), "n": len(finite),
            "values": finite}


def seed_stats(methods: list[dict]) -> dict:
    """One variant's per-seed method results -> its mean Dice / mean HD95 over structures and per structure, each
    as a ``spread`` over the seeds."""
    summaries = [summary(m) for m in methods]
    structures = {}
    for metric in ("dice", "hd95"):
        tables = [per_structure(m, metric) for m in methods]
        for key in tables[0] if tables else []:
            structures.setdefault(key, {})[metric] = spread([t.get(key, math.nan) for t in tables])
    names = {k: v.get("name", k) for k, v in methods[0]["cases"][0]["structures"].items()} if methods else {}
    return {"dice": spread([s["mean_dice"] for s in summaries]), "hd95": spread([s["mean_hd95"] for s in summaries]),
            "structures": structures, "names": names, "seeds": len(methods)}


def verdict(ours: dict, other: dict, higher_is_better: bool) -> tuple[float, str]:
    """(Δ = other − ours of the seed means, the call): 'tie' when |Δ| is below the larger seed spread of the two,
    'better'/'worse' (for ``other``) beyond it, 'not called (1 seed)' when neither has a spread."""
    delta = other["mean"] - ours["mean"]
    if not (math.isfinite(delta)):
        return delta, "–"
    width = max(ours["max"] - ours["min"], other["max"] - other["min"])
    if max(ours["n"], other["n"]) < 2:
        return delta, "not called (1 seed: no spread)"
    if abs(delta) < width:
        return delta, f"tie (Δ within seed spread {width:.3f})"  # no "|": it would split a table cell
    return delta, "better" if (delta > 0) == higher_is_better else "worse"


def shown_spread(stats: dict, digits: int = 3) -> str:
    """``0.744 [0.731–0.752]`` (seed mean [min–max]); the bare mean for one seed."""
    if stats["n"] < 2:
        return fmt(stats["mean"], digits)
    return f"{fmt(stats['mean'], digits)} [{fmt(stats['min'], digits)}–{fmt(stats['max'], digits)}]"


def rows_of(entries: list[tuple[str, dict]], reference: str) -> list[list]:
    """The summary table's rows: every entry (name, ``seed_stats``) with Dice and HD95 as seed mean [range] and its
    difference from ``reference`` (an entry's name) with the call."""
    by_name = dict(entries)
    ref = by_name.get(reference)
    rows = []
    for name, stats in entries:
        if ref is None or name == reference:
            rows.append([name, stats["seeds"], shown_spread(stats["dice"]), shown_spread(stats["hd95"], 2),
                         "–", "–", "–", "–"])
            continue
        d_dice, call_dice = verdict(ref["dice"], stats["dice"], True)
        d_hd, call_hd = verdict(ref["hd95"], stats["hd95"], False)
        rows.append([name, stats["seeds"], shown_spread(stats["dice"]), shown_spread(stats["hd95"], 2),
                     f"{d_dice:+.3f}" if math.isfinite(d_dice) else "–", call_dice,
                     f"{d_hd:+.2f}" if math.isfinite(d_hd) else "–", call_hd])
    return rows


SUMMARY_HEADERS = ["method", "seeds", "Dice (seed mean [min–max])", "HD95 mm (seed mean [min–max])",
                   "Δ Dice vs default", "call (Dice)", "Δ HD95 vs default", "call (HD95)"]


def summary_table(entries: list[tuple[str, dict]], reference: str) -> list[str]:
    """The per-protocol table of every variant and the peers against ``reference`` (the default configuration)."""
    return table(SUMMARY_HEADERS, rows_of(entries, reference))


def structure_tables(entries: list[tuple[str, dict]]) -> list[str]:
    """Per-structure Dice and HD95 (seed mean [min–max]) of every entry: two tables, one column per entry."""
    if not entries:
        return []
    names = entries[0][1]["names"]
    keys = list(entries[0][1]["structures"])
    lines = []
    for metric, digits, title in (("dice", 3, "Dice"), ("hd95", 2, "HD95 (mm)")):
        rows = [[f"{names.get(k, k)} ({k})",
                 *[shown_spread(s["structures"].get(k, {}).get(metric, spread([])), digits) for _, s in entries]]
                for k in keys]
        lines += [f"**{title} per structure**", ""] + table(["structure", *[n for n, _ in entries]], rows) + [""]
    return lines


def dice_figure(path: Path, entries: list[tuple[str, dict]], title: str) -> None:
    """Dice per structure: one marker per entry at its seed mean, the bar from the seed minimum to the maximum."""
    plt = pyplot()
    keys = list(entries[0][1]["structures"]) if entries else []
    names = entries[0][1]["names"] if entries else {}
    fig, axis = plt.subplots(figsize=(max(8.0, 0.45 * len(keys) + 3), 4.6))
    width = 0.8 / max(len(entries), 1)
    for index, (name, stats) in enumerate(entries):
        x = np.arange(len(keys)) - 0.4 + width * (index + 0.5)
        values = [stats["structures"].get(k, {}).get("dice", spread([])) for k in keys]
        mean = np.array([v["mean"] for v in values])
        low = np.array([v["mean"] - v["min"] if v["n"] else 0 for v in values])
        high = np.array([v["max"] - v["mean"] if v["n"] else 0 for v in values])
        axis.errorbar(x, mean, yerr=[low, high], fmt="o", markersize=3, capsize=1.5, linewidth=0.9, label=name)
    axis.set_xticks(range(len(keys)), [names.get(k, k) for k in keys], rotation=60, ha="right", fontsize=6.5)
    axis.set_ylabel("Dice (seed mean, bar = min–max)")
    axis.set_ylim(0, 1)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=7, ncol=2)
    axis.set_title(title, fontsize=9)
    save(fig, path, dpi=100)
