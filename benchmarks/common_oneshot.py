"""What the one-shot benchmarks share: our method through the real CLI, scoring label files the way
``distillseg oneshot evaluate`` does, and the method table / box plot of a report.

A *method result* is a dict::

    {"name": "SyN (40, 20) @ 2 mm", "kind": "peer" | "ours" | "floor", "resolution_mm": 2.0,
     "cases": [{"case": "...", "structures": {"17": {"dice": .., "hd95": .., "name": ..}, ...}}, ...],
     "segment": {"seconds_per_volume": .., "peak_rss_mb": .., ...} | None,
     "train": {"seconds": .., "peak_rss_mb": .., ...} | None}
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from common_report import fmt, ratio, table
from common_run import distillseg


def score_file(predicted: Path, truth: Path, structures: list[int], names: dict[int, str],
               label_map: dict[int, int] | None = None) -> dict:
    """Dice and HD95 (mm) per structure of a label file against the truth, both on the truth's grid, with the
    engine's own metric (``distillseg.common.metrics``). ``label_map``: predicted value -> truth value."""
    from distillseg.common.metrics import structure_scores
    from distillseg.common.volume_io import read_labels, same_grid

    pred, true = read_labels(predicted), read_labels(truth)
    if not same_grid(pred, true):
        raise RuntimeError(f"{predicted} is not on the grid of {truth}")
    array = pred.array
    if label_map:
        lookup = np.zeros(max(max(label_map), int(array.max())) + 1, dtype=np.int64)
        for source, target in label_map.items():
            lookup[source] = target
        array = lookup[array]
    scores = structure_scores(array, true.array, structures, spacing=true.spacing)
    return {str(k): {**v, "name": names.get(k, f"Label {k}")} for k, v in scores.items()}


def per_structure(method: dict, metric: str = "dice") -> dict[str, float]:
    """Structure -> mean of ``metric`` over the method's cases (NaNs ignored)."""
    values: dict[str, list[float]] = {}
    for case in method["cases"]:
        for key, entry in case["structures"].items():
            values.setdefault(key, []).append(entry.get(metric, math.nan))
    return {k: _nanmean(v) for k, v in values.items()}


def _nanmean(values) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def summary(method: dict) -> dict:
    """Mean ± sd over structures of the per-structure Dice (averaged over cases), mean HD95."""
    dice = [v for v in per_structure(method, "dice").values() if math.isfinite(v)]
    hd95 = [v for v in per_structure(method, "hd95").values() if math.isfinite(v)]
    return {"mean_dice": float(np.mean(dice)) if dice else math.nan,
            "sd_dice": float(np.std(dice)) if dice else math.nan,
            "mean_hd95": float(np.mean(hd95)) if hd95 else math.nan}


def train_ours(work: Path, name: str, atlas: Path, atlas_labels: Path, unlabeled: list[Path], options: list,
               threads: int, reuse: bool = False) -> dict:
    """``distillseg oneshot train`` (measured); returns the model path, time, memory and the bundle's facts.

    ``reuse``: keep a bundle an earlier run left in ``work/models/<name>`` instead of training again; its times come
    from the bundle's manifest (stage seconds, step times from the logged curve), its training memory is unknown."""
    model = work / "models" / name
    measured = None
    if not (reuse and (model / "manifest.json").is_file()):
        measured = distillseg("train", "--atlas", atlas, "--atlas-labels", atlas_labels, "--unlabeled", *unlabeled,
                              "--out", model, *options, threads=threads)
    manifest = json.loads((model / "manifest.json").read_text())
    grid = manifest["preprocessing"]["grid"]
    spacing = np.linalg.norm(np.asarray(grid["affine"])[:3, :3], axis=0)
    training = manifest["training"]
    if measured:
        run = {**measured.summary(), "augmenter_step_s": measured.median_step_seconds("augmenter"),
               "distill_step_s": measured.median_step_seconds("distill")}
    else:
        curves = training.get("curves", {})
        step = {stage: (points[-1][2] / points[-1][0] if points else None) for stage, points in curves.items()}
        run = {"command": "(bundle of an earlier run reused)", "seconds": sum(training.get("seconds", {}).values()),
               "peak_rss_mb": None, "reused": True, "augmenter_step_s": step.get("augmenter"),
               "distill_step_s": step.get("distill")}
    return {"model": str(model), **run, "stage_seconds": training.get("seconds", {}),
            "working_grid": grid["shape"], "resolution_mm": round(float(spacing.mean()), 3),
            "precision": training.get("precision"), "device": training.get("device"),
            "augmenter_iterations": training["options"]["augmenter"]["iterations"],
            "iterations": training["options"]["distill"]["iterations"]}


def segment_and_score(work: Path, name: str, trained: dict, images: list[Path], truths: list[Path],
                      cases: list[str], structures: list[int], names: dict[int, str], evaluate_options: list,
                      threads: int, predictor: str = "student", label_map: dict[int, int] | None = None) -> dict:
    """Our whole ``segment`` command on the test images (timed, memory measured), then
    ``distillseg oneshot evaluate`` for the scores; the segment command's own files are re-scored as a check that
    both agree (``max_dice_difference_segment_vs_evaluate``)."""
    out = work / "segmentations" / name
    out.mkdir(parents=True, exist_ok=True)
    predictor_options = ["--predictor", predictor]
    segmented = distillseg("segment", "--model", trained["model"], "--input", *images, "--output", out,
                           "--format", ".nii.gz", *predictor_options, threads=threads)
    report_path = work / "reports" / f"{name}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    distillseg("evaluate", "--model", trained["model"], "--images", *images, "--labels", *truths,
               "--report", report_path, *evaluate_options, *predictor_options, threads=threads)
    report = json.loads(report_path.read_text())
    results, difference = [], 0.0
    for case, image_report, written, truth in zip(cases, report["cases"], segmented.result["outputs"], truths):
        results.append({"case": case, "structures": image_report["structures"]})
        check = score_file(Path(written), truth, structures, names, label_map)
        difference = max(difference, max(abs(check[k]["dice"] - image_report["structures"][k]["dice"])
                                         for k in check))
    per_volume = segmented.result.get("seconds", [])
    return {"cases": results, "max_dice_difference_segment_vs_evaluate": difference,
            "segment": {**segmented.summary(), "seconds_per_volume": segmented.seconds / len(images),
                        "in_process_seconds_per_volume": _nanmean(per_volume),
                        "engine_peak_memory_mb": segmented.result.get("peak_memory_mb")}}


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


METHOD_HEADERS = ["method", "resolution", "Dice mean ± sd", "Δ Dice vs ref", "HD95 mm (mean)",
                  "segment time / volume", "speed-up vs ref", "speed-up vs fine ref", "peak RSS (segment)",
                  "training"]


def structure_table(methods: list[dict]) -> list[str]:
    """Per-structure Dice (mean over cases): one row per structure, one column per method."""
    keys = list(methods[0]["cases"][0]["structures"])
    names = {k: methods[0]["cases"][0]["structures"][k].get("name", k) for k in keys}
    columns = [per_structure(m) for m in methods]
    rows = [[f"{names[k]} ({k})", *[fmt(c.get(k)) for c in columns]] for k in keys]
    return table(["structure", *[m["name"] for m in methods]], rows)


def run_floor(data: dict) -> dict:
    """No registration: the atlas labels as they are, scored on each test scan (all share the atlas's grid)."""
    cases = [{"case": name, "structures": score_file(data["atlas_labels"], truth, data["structures"],
                                                     data["names"], data["label_map"])}
             for name, _, truth in data["tests"]]
    return {"name": "no registration (floor)", "kind": "floor", "resolution_mm": None, "cases": cases,
            "segment": None, "train": None}


def run_ants_method(data: dict, work: Path, spec: tuple, threads: int, reuse: bool) -> dict:
    """One ANTs setting on every test scan. ``spec``: (name, transform, spacing mm or None = native,
    reg_iterations or None = ANTs's defaults, aff_iterations or None)."""
    from common_ants import run_ants

    name, transform, spacing, reg_iterations, aff_iterations = spec
    folder = work / "ants" / "".join(c if c.isalnum() else "_" for c in name)
    cases, runs = [], []
    for case, image, truth in data["tests"]:
        run = run_ants(folder / case, image, data["atlas"], data["atlas_labels"], transform, spacing,
                       reg_iterations, threads, reuse, aff_iterations=aff_iterations)
        runs.append(run)
        cases.append({"case": case, "structures": score_file(Path(run["labels"]), truth, data["structures"],
                                                             data["names"], data["label_map"])})
    return {"name": name, "kind": "peer", "resolution_mm": spacing or data["native_mm"], "cases": cases,
            "train": None, "settings": runs[0]["settings"], "reused": all(r["reused"] for r in runs),
            "segment": {"seconds_per_volume": float(np.mean([r["seconds"] for r in runs])),
                        "registration_seconds": float(np.mean([r.get("registration_seconds", math.nan)
                                                               for r in runs])),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": runs}}


def stronger_syn(methods: list[dict], spacing: float) -> dict | None:
    """The ANTs SyN run at ``spacing`` mm with the higher mean Dice (the reference ours is compared with)."""
    candidates = [m for m in methods if m["kind"] == "peer" and "SyN" in m["name"] and m["resolution_mm"] == spacing]
    return max(candidates, key=lambda m: summary(m)["mean_dice"]) if candidates else None


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


def ants_table(methods: list[dict]) -> list[str]:
    """ANTs runs: settings, registration time alone and the whole process, cached or not."""
    rows = [[m["name"], json.dumps(m["settings"]), fmt(m["segment"]["registration_seconds"], 1, " s"),
             fmt(m["segment"]["seconds_per_volume"], 1, " s"), fmt(m["segment"]["peak_rss_mb"], 0, " MB"),
             "yes (cached)" if m.get("reused") else "no"]
            for m in methods if m["kind"] == "peer"]
    return ["Registration at the stated resolution (both images resampled linearly), atlas labels warped with "
            "`genericLabel` onto the test scan's own grid; threads = `ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`.", ""] + \
        table(["method", "settings", "registration alone", "whole process", "peak RSS", "reused"], rows)
