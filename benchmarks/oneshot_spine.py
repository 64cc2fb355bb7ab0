"""One-shot benchmark on spine CT: a SYNTHETIC-DEFORMATION SELF-CONSISTENCY test, not an independent test set.

Only one labelled spine CT exists here (``../shared/data/spine_ct``, VerSe, 12 vertebrae, 2 mm). It is the atlas;
the unlabelled and test subjects are made from the same scan by random smooth deformations (MONAI
``Rand3DElasticd``: elastic field + small rotation, scaling and shift) and intensity changes (bias field, gamma,
noise); the test subjects' truths are the atlas labels warped by the same deformation (nearest neighbour). A method
is scored on how well it recovers a deformation of its own atlas — it measures registration/segmentation
consistency, not generalisation to other patients.

Methods: no registration (floor); ANTs affine and SyN label propagation at the scan's 2 mm (SyN with its defaults
and with ``reg_iterations=(40, 20)``); ours through the real CLI: the full method and the augmenter alone.

One command, from the repository root::

    .venv/bin/python -m benchmarks.oneshot_spine [--augmenter-iterations N --iterations M]

writes ``benchmarks/results/oneshot_spine/{report.md,results.json,dice_boxplot.png}``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.harness.cli import benchmark_parser, log, read_raw_result, report_folder, save_run
from benchmarks.harness.figures import boxplot
from benchmarks.harness.oneshot import (SMOKE_ANTS, add_training_options, run_ants_methods, run_floor,
                                        segment_and_score, train_ours, training_options, training_settings)
from benchmarks.harness.oneshot_report import (METHOD_HEADERS, ants_table, budget_line, dice_series, method_rows,
                                               ours_table, stronger_syn, structure_table, summary)
from benchmarks.harness.paths import shown
from benchmarks.harness.report import about, fmt, header, table, write_json, write_text

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


def read_spine(data: Path) -> dict | None:
    """The shared data's labelled spine CT: ``{"image": (I, J, K) float32 in [0, 1], "labels": (I, J, K) int16
    vertebrae 1..12, "affine": 4x4 (mm), "image_path", "labels_path"}``; None when it is absent."""
    import nibabel as nib
    import numpy as np

    folder = data / "spine_ct"
    image_path, labels_path = folder / "verse_spine_image704.nii.gz", folder / "verse_spine_label704.nii.gz"
    if not image_path.is_file() or not labels_path.is_file():
        return None
    source = nib.load(image_path)
    return {"image": np.asarray(source.dataobj, dtype=np.float32),
            "labels": np.rint(np.asarray(nib.load(labels_path).dataobj)).astype(np.int16),
            "affine": source.affine, "image_path": image_path, "labels_path": labels_path}


def prepare_data(args, work: Path) -> dict | None:
    """The atlas (the real scan) and its deformed copies as unlabelled and test subjects; None when absent."""
    import nibabel as nib
    import numpy as np

    spine = read_spine(args.data)
    if spine is None:
        return None
    image, labels, affine = spine["image"], spine["labels"], spine["affine"]
    image_path, labels_path = spine["image_path"], spine["labels_path"]
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
            "sources": {"image": shown(image_path), "labels": shown(labels_path)}}
    for index in range(args.unlabeled_count):
        deformed, _ = make_subject(image, labels, seed=1000 + index)
        data["unlabeled"].append(write(f"unlabeled_{index}.nii.gz", deformed))
    for index in range(args.test_count):
        deformed, truth = make_subject(image, labels, seed=2000 + index)
        data["tests"].append((f"test_{index}", write(f"test_{index}.nii.gz", deformed),
                              write(f"test_{index}_labels.nii.gz", truth)))
    return data


def run_ours(args, data: dict, work: Path) -> list[dict]:
    """One training of the full method, segmented and scored with its student and with its augmenter."""
    options = ["--spacing", "atlas", "--label-names", data["names_file"], *training_options(args)]
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
    extra = ["**This is a synthetic-deformation self-consistency test, not an independent test set**: the only "
             "labelled spine CT is the atlas, and every unlabelled/test subject is a random smooth deformation "
             "(+ intensity change) of that same scan, scored against the atlas labels warped the same way.",
             budget_line(full["train"] if full else None, settings, "iterations"),
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
    """``results.json``, the box plot and ``report.md`` in ``out``."""
    write_json(out / "results.json", result)
    boxplot(out / "dice_boxplot.png", dice_series(result["methods"]),
            "Dice per vertebra, spine CT, SYNTHETIC deformations of the atlas (self-consistency)"
            + (" — SMOKE RUN" if result["settings"]["smoke"] else ""))
    write_text(out / "report.md", markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "oneshot_spine_benchmark", smoke="tiny budgets everywhere",
                              data="the shared data folder (spine_ct/)")
    parser.add_argument("--unlabeled-count", type=int, default=4, help="synthetic unlabelled subjects")
    parser.add_argument("--test-count", type=int, default=3, help="synthetic test subjects")
    add_training_options(parser)
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    if args.report_only:
        write_report(read_raw_result(args), out)
        return 0
    started = time.monotonic()
    data = prepare_data(args, args.work)
    if data is None:
        print(f"Skipped: no spine CT in {args.data / 'spine_ct'}.", file=sys.stderr)
        return 0
    result = {"about": about(), "native_mm": data["native_mm"], "data": data["sources"],
              "settings": {"threads": args.threads, "smoke": args.smoke, "unlabeled_count": args.unlabeled_count,
                           "test_count": args.test_count, **training_settings(args)},
              "structures": data["structures"], "methods": [run_floor(data)]}
    native = data["native_mm"]
    smoke = SMOKE_ANTS if args.smoke else {"syn": None, "affine": None}
    specs = [(f"ANTs affine @ {native:g} mm", "Affine", None, None, smoke["affine"]),
             (f"ANTs SyN defaults @ {native:g} mm", "SyN", None, smoke["syn"], smoke["affine"]),
             (f"ANTs SyN (40, 20) @ {native:g} mm", "SyN", None, smoke["syn"] or (40, 20), smoke["affine"])]
    result["methods"] += run_ants_methods(data, args.work, specs, args.threads, args.reuse)
    log("ours")
    result["methods"] += run_ours(args, data, args.work)
    save_run(result, started, args, lambda done: write_report(done, out))
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
