"""The one-shot benchmarks' methods: ours through the real CLI, ANTs label propagation and the no-registration
floor, each scored on the test scans the way ``distillseg oneshot evaluate`` scores them; and the options of our
training that both one-shot scripts take. Results are *method results* (``oneshot_report``).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from .ants import run_ants
from .cli import log
from .oneshot_report import nanmean, summary
from .run import distillseg

# A smoke run's budgets: two steps per training stage; ANTs with as few iterations per level as it takes.
SMOKE_TRAINING = ["--augmenter-iterations", 2, "--iterations", 2]
SMOKE_ANTS = {"syn": (2, 1), "syn_fine": (2, 1, 0), "affine": (20, 0, 0, 0)}
SYN_FINE = "ANTs SyN defaults @ 1 mm"


def fine_syn_spec(smoke: bool) -> tuple:
    """``run_ants_method``'s spec of ANTs SyN with its default iterations on the test scan's own 1 mm grid: the
    finest registration reference of the brain benchmarks (a smoke run: as few iterations as it takes)."""
    return (SYN_FINE, "SyN", None, SMOKE_ANTS["syn_fine"] if smoke else None, SMOKE_ANTS["affine"] if smoke else None)


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """Our training budget and any other training option."""
    parser.add_argument("--augmenter-iterations", type=int, default=None,
                        help="our augmenter steps (default: the CLI's default)")
    parser.add_argument("--iterations", type=int, default=None, help="our student steps (default: the CLI's)")
    parser.add_argument("--train-option", action="append", default=[],
                        help="one more option for `distillseg oneshot train` (repeat; e.g. --train-option=--lr=3e-4)")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Our training budget and seed, any other training option, and reuse of cached ANTs results."""
    add_budget_options(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse cached ANTs results made with the same settings")


def budget_options(args: argparse.Namespace, smoke_budget: list = SMOKE_TRAINING) -> list:
    """``oneshot train``'s budget options: ``smoke_budget`` for a smoke run, else the iterations given (none: the
    CLI's defaults)."""
    return smoke_budget if args.smoke else [
        *(["--augmenter-iterations", args.augmenter_iterations] if args.augmenter_iterations else []),
        *(["--iterations", args.iterations] if args.iterations else [])]


def budget_text(args: argparse.Namespace, smoke_budget: list = SMOKE_TRAINING) -> str:
    """The budget and the extra training options as a report's settings give them."""
    if args.smoke:
        return "smoke: " + " ".join(map(str, smoke_budget))
    return (f"augmenter {args.augmenter_iterations or 'CLI default'} + student {args.iterations or 'CLI default'}"
            " iterations" + (f", {' '.join(args.train_option)}" if args.train_option else ""))


def training_options(args: argparse.Namespace) -> list:
    """The budget (a smoke run's, or the iterations given), the seed and the extra options of our training."""
    return ["--seed", args.seed, *budget_options(args), *args.train_option]


def training_settings(args: argparse.Namespace) -> dict:
    """What a results file records of our training options."""
    return {"seed": args.seed, "augmenter_iterations": args.augmenter_iterations, "iterations": args.iterations,
            "train_options": args.train_option,
            "budget_is_default": not (args.augmenter_iterations or args.iterations or args.smoke)}


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
                      threads: int, predictor: str = "student", label_map: dict[int, int] | None = None,
                      segment_options: list = ()) -> dict:
    """Our whole ``segment`` command on the test images (timed, memory measured), then
    ``distillseg oneshot evaluate`` for the scores; the segment command's own files are re-scored as a check that
    both agree (``max_dice_difference_segment_vs_evaluate``). ``segment_options`` (e.g. ``--keep-largest``) go to
    both commands."""
    out = work / "segmentations" / name
    out.mkdir(parents=True, exist_ok=True)
    predictor_options = ["--predictor", predictor, *segment_options]
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
                        "in_process_seconds_per_volume": nanmean(per_volume),
                        "engine_peak_memory_mb": segmented.result.get("peak_memory_mb")}}


def run_floor(data: dict) -> dict:
    """No registration: the atlas labels as they are, scored on each test scan (all share the atlas's grid)."""
    cases = [{"case": name, "structures": score_file(data["atlas_labels"], truth, data["structures"],
                                                     data["names"], data["label_map"])}
             for name, _, truth in data["tests"]]
    return {"name": "no registration (floor)", "kind": "floor", "resolution_mm": None, "cases": cases,
            "segment": None, "train": None}


def run_ants_method(data: dict, work: Path, spec: tuple, threads: int, reuse: bool, seed: int = 1) -> dict:
    """One ANTs setting on every test scan. ``spec``: (name, transform, spacing mm or None = native,
    reg_iterations or None = ANTs's defaults, aff_iterations or None[, more ``ants.registration`` arguments: a dict,
    see ``run_ants``]). ``seed``: antsRegistration's random seed (its affine stage samples voxels at random)."""
    name, transform, spacing, reg_iterations, aff_iterations = spec[:5]
    registration_options = spec[5] if len(spec) > 5 else None
    folder = work / "ants" / ("".join(c if c.isalnum() else "_" for c in name) + (f"_seed{seed}" if seed != 1 else ""))
    cases, runs = [], []
    for case, image, truth in data["tests"]:
        run = run_ants(folder / case, image, data["atlas"], data["atlas_labels"], transform, spacing,
                       reg_iterations, threads, reuse, seed=seed, aff_iterations=aff_iterations,
                       registration_options=registration_options)
        runs.append(run)
        cases.append({"case": case, "structures": score_file(Path(run["labels"]), truth, data["structures"],
                                                             data["names"], data["label_map"])})
    return {"name": name, "kind": "peer", "seed": seed, "resolution_mm": spacing or data["native_mm"], "cases": cases,
            "train": None, "settings": runs[0]["settings"], "reused": all(r["reused"] for r in runs),
            "segment": {"seconds_per_volume": float(np.mean([r["seconds"] for r in runs])),
                        "registration_seconds": float(np.mean([r.get("registration_seconds", math.nan)
                                                               for r in runs])),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": runs}}


def run_ants_methods(data: dict, work: Path, specs: list[tuple], threads: int, reuse: bool) -> list[dict]:
    """``run_ants_method`` for every spec, in order, logging each one's mean Dice."""
    methods = []
    for spec in specs:
        log(spec[0])
        methods.append(run_ants_method(data, work, spec, threads, reuse))
        log(f"{spec[0]}: mean Dice {summary(methods[-1])['mean_dice']:.3f}")
    return methods
