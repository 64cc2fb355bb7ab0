"""One-shot benchmark on spine CT: a SYNTHETIC-DEFORMATION SELF-CONSISTENCY test, not an independent test set.

Only one labelled spine CT exists here (``../shared/data/spine_ct``, VerSe, 12 vertebrae, 2 mm). It is the atlas;
the unlabelled and test subjects are made from the same scan by random smooth deformations (MONAI
``Rand3DElasticd``: elastic field + small rotation, scaling and shift) and intensity changes (bias field, gamma,
noise); the test subjects' truths are the atlas labels warped by the same deformation (nearest neighbour). A method
is scored on how well it recovers a deformation of its own atlas — it measures registration/segmentation
consistency, not generalisation to other patients.

Methods: no registration (floor); ANTs affine and SyN label propagation at the scan's 2 mm (SyN with its defaults
and with ``reg_iterations=(40, 20)``); ours through the real CLI: the full method and the augmenter alone.

One command::

    flock /work/heavy.lock .venv/bin/python benchmarks/oneshot_spine.py [--augmenter-iterations N --iterations M]

writes ``benchmarks/results/oneshot_spine/{report.md,results.json,dice_boxplot.png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common_oneshot import (METHOD_HEADERS, ants_table, method_rows, ours_table, per_structure,  # noqa: E402
                            run_ants_method, run_floor, segment_and_score, stronger_syn, structure_table, summary,
                            train_ours)
from common_report import RESULTS, about, boxplot, fmt, header, table, write_json, write_text  # noqa: E402

NAME = "oneshot_spine"
# Deformations: a smooth elastic field (MONAI draws uniform noise, smooths it with a Gaussian of sigma voxels and
# scales it by the magnitude: sigma 6-8 voxels and magnitude 200-300 move the voxels by 3.4 mm on average, 5.9 mm at
# the 95th percentile, measured on this scan) plus rotation (rad), scaling (fraction) and shift (voxels of 2 mm).
DEFORMATION = {"sigma_range": (6, 8), "magnitude_range": (200, 300), "rotate_range": (0.06, 0.06, 0.06),
               "scale_range": (0.05, 0.05, 0.05), "translate_range": (3, 3, 3)}
INTENSITY = {"bias_coeff_range": (0.1, 0.3), "gamma": (0.7, 1.4), "noise_std": 0.02}


def make_subject(image, labels, seed: int):
    """A deformed, re-contrasted copy of (image, labels): ((I, J, K) float32, (I, J, K) int16)."""
    import numpy as np
    from monai.transforms import (Compose, Rand3DElasticd, RandAdjustContrastd, RandBiasFieldd,
                                  RandGaussianNoised)

    transform = Compose([
        Rand3DElasticd(keys=["image", "label"], prob=1.0, mode=("bilinear", "nearest"), padding_mode="border",
                       **DEFORMATION),
        RandBiasFieldd(keys=["image"], coeff_range=INTENSITY["bias_coeff_range"], prob=1.0),
        RandAdjustContrastd(keys=["image"], gamma=INTENSITY["gamma"], prob=1.0),
        RandGaussianNoised(keys=["image"], std=INTENSITY["noise_std"], prob=1.0),
    ])
    transform.set_random_state(seed)
    out = transform({"image": image[None].astype(np.float32), "label": labels[None]})
    return np.asarray(out["image"][0], dtype=np.float32), np.rint(np.asarray(out["label"][0])).astype(np.int16)


def prepare_data(args, work: Path) -> dict | None:
    import nibabel as nib
    import numpy as np

    folder = args.data / "spine_ct"
    image_path, labels_path = folder / "verse_spine_image704.nii.gz", folder / "verse_spine_label704.nii.gz"
    if not image_path.is_file() or not labels_path.is_file():
        return None
    source = nib.load(image_path)
    image = np.asarray(source.dataobj, dtype=np.float32)
    labels = np.rint(np.asarray(nib.load(labels_path).dataobj)).astype(np.int16)
    affine = source.affine
    data_dir = work / "data"
    data_dir.mkdir(parents=True, exist_ok=True)

    def write(name, array):
        path = data_dir / name
        nib.save(nib.Nifti1Image(array, affine), path)
        return path

    structures = [int(v) for v in np.unique(labels) if v != 0]
    names = {v: f"vertebra {v}" for v in structures}
    (data_dir / "names.json").write_text(json.dumps({str(v): n for v, n in names.items()}))
    data = {"atlas": write("atlas.nii.gz", image), "atlas_labels": write("atlas_labels.nii.gz", labels),
            "unlabeled": [], "tests": [], "structures": structures, "names": names, "label_map": None,
            "names_file": data_dir / "names.json", "native_mm": float(np.linalg.norm(affine[:3, 0])),
            "sources": {"image": str(image_path), "labels": str(labels_path)}}
    for index in range(args.unlabeled_count):
        deformed, _ = make_subject(image, labels, seed=1000 + index)
        data["unlabeled"].append(write(f"unlabeled_{index}.nii.gz", deformed))
    for index in range(args.test_count):
        deformed, truth = make_subject(image, labels, seed=2000 + index)
        data["tests"].append((f"test_{index}", write(f"test_{index}.nii.gz", deformed),
                              write(f"test_{index}_labels.nii.gz", truth)))
    return data


def run_ours(args, data: dict, work: Path) -> list[dict]:
    budget = ["--augmenter-iterations", 2, "--iterations", 2] if args.smoke else [
        *(["--augmenter-iterations", args.augmenter_iterations] if args.augmenter_iterations else []),
        *(["--iterations", args.iterations] if args.iterations else [])]
    options = ["--spacing", "atlas", "--label-names", data["names_file"], "--seed", args.seed, *budget,
               *args.train_option]
    images, truths, cases = ([t[1] for t in data["tests"]], [t[2] for t in data["tests"]],
                             [t[0] for t in data["tests"]])
    trained = train_ours(work, "full", data["atlas"], data["atlas_labels"], data["unlabeled"], options, args.threads)
    methods = []
    for name, predictor in (("ours: full method", "student"), ("ours: augmenter alone", "augmenter")):
        scored = segment_and_score(work, predictor, trained, images, truths, cases, data["structures"],
                                   data["names"], [], args.threads, predictor=predictor)
        methods.append({"name": name, "kind": "ours", "resolution_mm": trained["resolution_mm"],
                        "train": trained if predictor == "student" else None, **scored})
    return methods


def markdown(result: dict) -> str:
    methods, settings = result["methods"], result["settings"]
    syn = stronger_syn(methods, result["native_mm"])
    full = next((m for m in methods if m["name"] == "ours: full method"), None)
    budget = (f"augmenter {full['train']['augmenter_iterations']} + student {full['train']['iterations']} iterations"
              if full else "ours not run")
    extra = ["**This is a synthetic-deformation self-consistency test, not an independent test set**: the only "
             "labelled spine CT is the atlas, and every unlabelled/test subject is a random smooth deformation "
             "(+ intensity change) of that same scan, scored against the atlas labels warped the same way.",
             f"**Training budget of ours**: {budget} "
             f"({'CLI defaults' if settings['budget_is_default'] else 'set by the options in the command'})",
             f"**Data**: {result['data']['image']} ({settings['unlabeled_count']} unlabelled and "
             f"{settings['test_count']} test subjects made from it); deformation {json.dumps(DEFORMATION)}; "
             f"intensity {json.dumps(INTENSITY)}",
             f"**Total wall time**: {fmt(result['total_seconds'] / 60, 1, ' min')}"]
    if settings["smoke"]:
        extra.insert(0, "**SMOKE RUN: tiny budgets to check the pipeline; the scores mean nothing.**")
    lines = header("One-shot segmentation of spine CT — synthetic-deformation self-consistency",
                   result["about"]["command"], result["about"], extra)
    lines += ["## Methods side by side", "",
              f"Reference (ref) = the stronger ANTs SyN at {result['native_mm']:g} mm"
              f"{' (' + syn['name'] + ')' if syn else ''}. Segment time = the whole command per volume; "
              "speed-up = the reference's time / this method's time.", ""]
    lines += table(METHOD_HEADERS, method_rows(methods, syn, None)) + [""]
    if full and syn:
        gap = summary(full)["mean_dice"] - summary(syn)["mean_dice"]
        speed = syn["segment"]["seconds_per_volume"] / full["segment"]["seconds_per_volume"]
        lines += [f"Ours (full) vs {syn['name']}: {gap:+.3f} mean Dice, {speed:.1f}× the speed per volume.", ""]
    lines += ["## Our runs", ""] + ours_table(methods) + [""]
    lines += ["## ANTs runs", ""] + ants_table(methods) + [""]
    lines += ["## Dice per vertebra (mean over the test subjects)", "", "![Dice per vertebra](dice_boxplot.png)", ""]
    lines += structure_table(methods) + [""]
    return "\n".join(lines)


def write_report(result: dict, out: Path) -> None:
    write_json(out / "results.json", result)
    series = {m["name"].replace("ours: ", ""): list(per_structure(m).values()) for m in result["methods"]}
    boxplot(out / "dice_boxplot.png", series, "Dice per vertebra, spine CT, SYNTHETIC deformations of the atlas "
            "(self-consistency)" + (" — SMOKE RUN" if result["settings"]["smoke"] else ""))
    write_text(out / "report.md", markdown(result))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="the shared data folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/oneshot_spine_benchmark"))
    parser.add_argument("--out", type=Path, default=None,
                        help=f"report folder (default: benchmarks/results/{NAME}; with --smoke: WORK/report)")
    parser.add_argument("--unlabeled-count", type=int, default=4, help="synthetic unlabelled subjects")
    parser.add_argument("--test-count", type=int, default=3, help="synthetic test subjects")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--augmenter-iterations", type=int, default=None, help="our augmenter steps (default: CLI's)")
    parser.add_argument("--iterations", type=int, default=None, help="our student steps (default: the CLI's)")
    parser.add_argument("--train-option", action="append", default=[],
                        help="one more option for `distillseg oneshot train` (repeat)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse cached ANTs results made with the same settings")
    parser.add_argument("--smoke", action="store_true", help="tiny budgets everywhere, to check the pipeline")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from WORK/raw_result.json")
    args = parser.parse_args(argv)
    out = args.out or (args.work / "report" if args.smoke else RESULTS / NAME)
    raw = args.work / "raw_result.json"
    if args.report_only:
        write_report(json.loads(raw.read_text()), out)
        return 0
    started = time.monotonic()
    data = prepare_data(args, args.work)
    if data is None:
        print(f"Skipped: no spine CT in {args.data / 'spine_ct'}.", file=sys.stderr)
        return 0
    smoke = {"syn": (2, 1), "affine": (20, 0, 0, 0)} if args.smoke else {"syn": None, "affine": None}
    result = {"about": about(), "native_mm": data["native_mm"], "data": data["sources"],
              "settings": {"threads": args.threads, "smoke": args.smoke, "seed": args.seed,
                           "unlabeled_count": args.unlabeled_count, "test_count": args.test_count,
                           "augmenter_iterations": args.augmenter_iterations, "iterations": args.iterations,
                           "train_options": args.train_option,
                           "budget_is_default": not (args.augmenter_iterations or args.iterations or args.smoke)},
              "structures": data["structures"], "methods": [run_floor(data)]}
    native = data["native_mm"]
    for spec in [(f"ANTs affine @ {native:g} mm", "Affine", None, None, smoke["affine"]),
                 (f"ANTs SyN defaults @ {native:g} mm", "SyN", None, smoke["syn"], smoke["affine"]),
                 (f"ANTs SyN (40, 20) @ {native:g} mm", "SyN", None, smoke["syn"] or (40, 20), smoke["affine"])]:
        log(spec[0])
        result["methods"].append(run_ants_method(data, args.work, spec, args.threads, args.reuse))
    log("ours")
    result["methods"] += run_ours(args, data, args.work)
    result["total_seconds"] = time.monotonic() - started
    write_json(raw, result)
    write_report(result, out)
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
