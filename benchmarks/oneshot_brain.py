"""One-shot benchmark on real brain MRI: our method, its ablations and ANTs label propagation in one run.

Atlas = the OASIS brain with its seg35 labels; unlabelled = the vxm brain (+ nilearn's MNI152 template with
``--mni``); test subject = the vxm brain with its FreeSurfer aseg. Both brains share one voxel grid but their
header affines are not to be trusted: the arrays are loaded and written to working copies that all carry the
OASIS file's affine. Labels are compared in FreeSurfer IDs (``labels.json: oasis_seg35_to_freesurfer``) on the 29
structures of ``brain_eval_labels_recommended``, at 1 mm on the test scan's own grid.

Methods: no registration (the atlas labels as they are: the floor); ANTs affine and SyN label propagation at the
working resolution (SyN with its defaults, which do no iterations at the finest level, and with
``reg_iterations=(40, 20)``, the same physical schedule as its 1 mm defaults) and SyN at 1 mm; ours through the real
CLI (``distillseg oneshot train``/``segment``/``evaluate``): the full method (the paper's objective, with its hint
loss: ``--hint-weight 1``, no longer the CLI's default), without hint loss (today's default), without reconstruction
loss, and the augmenter alone (``--predictor augmenter`` on the full model).

One command from the repository root (about 1 to 5 hours on 2 CPU cores, depending on the training budget)::

    .venv/bin/python -m benchmarks.oneshot_brain [--augmenter-iterations N --iterations M]

writes ``benchmarks/results/oneshot_brain/{report.md,results.json,dice_boxplot.png}``. ``--reuse`` keeps the ANTs
results of an earlier run with the same settings (cached in ``--work``), so a rerun of our side costs only our
training. With a neurite-OASIS folder (``--oasis-folder``), the first subject is the atlas and the next ones are
unlabelled / test subjects.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path

from benchmarks.harness.cli import benchmark_parser, log, read_raw_result, report_folder, save_run
from benchmarks.harness.figures import boxplot, learning_curves, overlay
from benchmarks.harness.oneshot import (SMOKE_ANTS, add_training_options, fine_syn_spec, run_ants_methods, run_floor,
                                        segment_and_score, train_ours, training_options, training_settings)
from benchmarks.harness.oneshot_report import (METHOD_HEADERS, ants_table, budget_line, dice_series, method_rows,
                                               ours_table, stronger_syn, structure_table, summary)
from benchmarks.harness.paths import shown
from benchmarks.harness.report import about, fmt, header, table, write_json, write_text

NAME = "oneshot_brain"


# ----------------------------------------------------------------------------------------------- data
def _write(path: Path, array, affine, dtype) -> Path:
    import nibabel as nib
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array).astype(dtype), affine), path)
    return path


def _fs_lookup(mapping: dict[int, int]):
    import numpy as np

    lookup = np.zeros(max(mapping) + 1, dtype=np.int16)
    for seg35, freesurfer in mapping.items():
        lookup[seg35] = freesurfer
    return lookup


def _mni_in_grid(shape, affine, out: Path) -> Path:
    """nilearn's MNI152 T1 (1 mm) resampled through its world affine into the brains' grid, scaled to [0, 1]."""
    import numpy as np
    from nilearn import datasets, image

    template = datasets.load_mni152_template(resolution=1)
    resampled = image.resample_img(template, target_affine=affine, target_shape=shape, interpolation="continuous",
                                   force_resample=True, copy_header=True).get_fdata()
    high = np.percentile(resampled[resampled > 0], 99.5) if np.any(resampled > 0) else 1.0
    return _write(out, np.clip(resampled / high, 0, 1), affine, np.float32)


def prepare_data(args, work: Path) -> dict | None:
    """Working copies (NIfTI, OASIS affine, FreeSurfer IDs for every truth) and the label tables; None when absent."""
    import nibabel as nib
    import numpy as np

    labels_json = args.data / "labels.json"
    if not labels_json.is_file():
        return None
    tables = json.loads(labels_json.read_text())
    seg35_to_fs = {int(k): int(v) for k, v in tables["oasis_seg35_to_freesurfer"].items()}
    lookup = _fs_lookup(seg35_to_fs)
    if args.oasis_folder:
        subjects = sorted(p for p in args.oasis_folder.iterdir() if (p / "aligned_norm.nii.gz").is_file()
                          and (p / "aligned_seg35.nii.gz").is_file())
        needed = 1 + args.unlabeled_count + args.test_count
        if len(subjects) < needed:
            raise SystemExit(f"{args.oasis_folder}: {len(subjects)} subjects with aligned_norm/aligned_seg35, "
                             f"{needed} needed")
        atlas_dir, unlabeled_dirs = subjects[0], subjects[1:1 + args.unlabeled_count]
        test_dirs = subjects[1 + args.unlabeled_count:needed]
        sources = {"atlas": (atlas_dir / "aligned_norm.nii.gz", atlas_dir / "aligned_seg35.nii.gz"),
                   "unlabeled": [d / "aligned_norm.nii.gz" for d in unlabeled_dirs],
                   "tests": [(d.name, d / "aligned_norm.nii.gz", d / "aligned_seg35.nii.gz", True) for d in test_dirs]}
    else:
        brain = args.data / "brain"
        if not (brain / "oasis_example_aligned_norm.nii.gz").is_file():
            return None
        vxm = brain / "vxm_test_scan_norm.nii.gz"
        sources = {"atlas": (brain / "oasis_example_aligned_norm.nii.gz", brain / "oasis_example_aligned_seg35.nii.gz"),
                   "unlabeled": [vxm],
                   "tests": [("vxm", vxm, brain / "vxm_test_scan_aseg.nii.gz", False)]}
    reference = nib.load(sources["atlas"][0])
    affine, shape = reference.affine, reference.shape[:3]

    def array(path):
        data = np.asanyarray(nib.load(path).dataobj)
        if data.shape[:3] != shape:
            raise SystemExit(f"{path}: shape {data.shape} is not the atlas's {shape}")
        return data

    data_dir = work / "data"
    prepared = {
        "atlas": _write(data_dir / "atlas.nii.gz", array(sources["atlas"][0]), affine, np.float32),
        "atlas_labels": _write(data_dir / "atlas_seg35.nii.gz", np.rint(array(sources["atlas"][1])), affine, np.uint8),
        "unlabeled": [_write(data_dir / f"unlabeled_{i}.nii.gz", array(p), affine, np.float32)
                      for i, p in enumerate(sources["unlabeled"])],
        "tests": [],
        "labels_json": labels_json,
        "label_map": seg35_to_fs,
        "native_mm": 1.0,
        "structures": [int(v) for v in tables["brain_eval_labels_recommended"]],
        "names": {int(k): v for k, v in tables["freesurfer_names"].items()},
        "sources": {"atlas": [shown(p) for p in sources["atlas"]],
                    "unlabeled": [shown(p) for p in sources["unlabeled"]],
                    "tests": [[shown(t[1]), shown(t[2])] for t in sources["tests"]], "mni152": bool(args.mni)},
    }
    for name, image, truth, is_seg35 in sources["tests"]:
        labels = np.rint(array(truth)).astype(np.int64)
        prepared["tests"].append((name, _write(data_dir / f"test_{name}.nii.gz", array(image), affine, np.float32),
                                  _write(data_dir / f"test_{name}_fs.nii.gz", lookup[labels] if is_seg35 else labels,
                                         affine, np.int16)))
    if args.mni:
        prepared["unlabeled"].append(_mni_in_grid(shape, affine, data_dir / "unlabeled_mni152.nii.gz"))
    names = {k: v for k, v in tables["oasis_seg35_names"].items() if k != "0"}
    prepared["seg35_names"] = data_dir / "seg35_names.json"
    prepared["seg35_names"].write_text(json.dumps(names))
    return prepared


# -------------------------------------------------------------------------------------------- methods
def ants_methods(args) -> list[tuple[str, str, float | None, tuple | None, tuple | None]]:
    """(name, transform, spacing, reg_iterations, aff_iterations) of every ANTs run."""
    s = args.spacing
    smoke = SMOKE_ANTS if args.smoke else {"syn": None, "affine": None}
    return [
        (f"ANTs affine @ {s:g} mm", "Affine", s, None, smoke["affine"]),
        (f"ANTs SyN defaults @ {s:g} mm", "SyN", s, smoke["syn"], smoke["affine"]),
        (f"ANTs SyN (40, 20) @ {s:g} mm", "SyN", s, smoke["syn"] or (40, 20), smoke["affine"]),
        fine_syn_spec(args.smoke),
    ]


def run_ours(args, data: dict, work: Path) -> list[dict]:
    """Our trainings (``--variants``), each segmented and scored; the full model also on the moved-header scan and
    with its augmenter as the predictor."""
    common = ["--spacing", args.spacing, "--label-names", data["seg35_names"], *training_options(args)]
    evaluate_options = ["--label-map", f"{data['labels_json']}:oasis_seg35_to_freesurfer",
                        "--structures", f"{data['labels_json']}:brain_eval_labels_recommended"]
    images = [t[1] for t in data["tests"]]
    truths = [t[2] for t in data["tests"]]
    cases = [t[0] for t in data["tests"]]
    variants = [("ours: full method", "full", ["--hint-weight", 1]),
                ("ours: no hint loss", "no_hint", ["--hint-weight", 0]),
                ("ours: no recon loss", "no_recon", ["--hint-weight", 1, "--recon-weight", 0])]
    variants = [v for v in variants if v[1] in args.variants.split(",")]
    methods, full = [], None
    for label, key, extra in variants:
        log(f"training {label}")
        trained = train_ours(work, key, data["atlas"], data["atlas_labels"], data["unlabeled"], common + extra,
                             args.threads, reuse=args.reuse_models)
        scored = segment_and_score(work, key, trained, images, truths, cases, data["structures"], data["names"],
                                   evaluate_options, args.threads, label_map=data["label_map"])
        methods.append({"name": label, "kind": "ours", "resolution_mm": trained["resolution_mm"], "train": trained,
                        **scored})
        full = full or trained
        log(f"{label}: mean Dice {summary(methods[-1])['mean_dice']:.3f}")
        if key == "full":
            moved = [moved_header(image, work / "moved") for image in images]
            scored = segment_and_score(work, "full_moved", trained, moved, [moved_header(t, work / "moved")
                                                                             for t in truths], cases,
                                       data["structures"], data["names"], evaluate_options, args.threads,
                                       label_map=data["label_map"])
            methods.append({"name": MOVED, "kind": "ours", "resolution_mm": trained["resolution_mm"],
                            "train": None, "trained_with": "the full method's model", **scored})
    scored = segment_and_score(work, "augmenter", full, images, truths, cases, data["structures"], data["names"],
                               evaluate_options, args.threads, predictor="augmenter", label_map=data["label_map"])
    methods.insert(1, {"name": "ours: augmenter alone", "kind": "ours", "resolution_mm": full["resolution_mm"],
                       "train": None, "trained_with": "the full method's model (its stage 1)", **scored})
    return methods


MOVED = "ours: full method, header moved"
MOVED_DEGREES, MOVED_SHIFT_MM = 15.0, 20.0


def moved_header(path: Path, folder: Path) -> Path:
    """A copy of ``path`` whose header puts it 15° rotated (about the oblique axis (1, 1, 1), through the volume's
    centre) and 20 mm shifted (along (1, 1, 1)) in world space: same voxels, different voxel-to-world matrix."""
    import nibabel as nib
    import numpy as np
    from scipy.spatial.transform import Rotation

    image = nib.load(path)
    axis = np.ones(3) / np.sqrt(3)
    rotation = Rotation.from_rotvec(np.radians(MOVED_DEGREES) * axis).as_matrix()
    centre = image.affine[:3, :3] @ ((np.asarray(image.shape[:3]) - 1) / 2) + image.affine[:3, 3]
    motion = np.eye(4)
    motion[:3, :3] = rotation
    motion[:3, 3] = centre - rotation @ centre + MOVED_SHIFT_MM * axis
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / path.name
    moved = nib.Nifti1Image(np.asanyarray(image.dataobj), motion @ image.affine, image.header)
    moved.set_qform(moved.affine, code=1), moved.set_sform(moved.affine, code=1)  # every reader agrees
    nib.save(moved, out)
    return out


# --------------------------------------------------------------------------------------------- report
def checks(methods: list[dict], spacing: float) -> list[str]:
    """The issue's targets, each met or missed by how much."""
    by_name = {m["name"]: m for m in methods}
    full = by_name.get("ours: full method")
    syn = stronger_syn(methods, spacing)
    fine = by_name.get("ANTs SyN defaults @ 1 mm")
    if not full:
        return []
    lines = []
    dice = summary(full)["mean_dice"]
    if syn:
        gap = dice - summary(syn)["mean_dice"]
        lines.append(f"full method mean Dice {dice:.3f} vs the stronger SyN at {spacing:g} mm ({syn['name']}) "
                     f"{summary(syn)['mean_dice']:.3f}: {'met' if gap >= 0 else 'MISSED'} ({gap:+.3f})")
        speed = syn["segment"]["seconds_per_volume"] / full["segment"]["seconds_per_volume"]
        lines.append(f"segment speed-up vs that SyN: {speed:.1f}× (target ≥ 5×): "
                     f"{'met' if speed >= 5 else 'MISSED'}")
    if fine:
        speed = fine["segment"]["seconds_per_volume"] / full["segment"]["seconds_per_volume"]
        lines.append(f"segment speed-up vs SyN at 1 mm: {speed:.1f}× (target ≥ 10×): "
                     f"{'met' if speed >= 10 else 'MISSED'}")
    if MOVED in by_name:
        gap = summary(by_name[MOVED])["mean_dice"] - dice
        lines.append(f"test scan with its header moved ({MOVED_DEGREES:g}° rotation, {MOVED_SHIFT_MM:g} mm shift): "
                     f"mean Dice {summary(by_name[MOVED])['mean_dice']:.3f} ({gap:+.3f} vs unmoved; target within "
                     f"0.03): {'met' if abs(gap) <= 0.03 else 'MISSED'}")
    for other in ("ours: no hint loss", "ours: no recon loss", "ours: augmenter alone"):
        if other in by_name:
            gap = dice - summary(by_name[other])["mean_dice"]
            lines.append(f"full method vs {other.split(': ')[1]}: {gap:+.3f} Dice ({'met' if gap > 0 else 'MISSED'})")
    return lines


def markdown(result: dict) -> str:
    methods, settings = result["methods"], result["settings"]
    spacing = settings["spacing"]
    syn = stronger_syn(methods, spacing)
    fine = next((m for m in methods if m["name"] == "ANTs SyN defaults @ 1 mm"), None)
    ours = [m for m in methods if m["name"] == "ours: full method"]
    syn_name = f" ({syn['name']})" if syn else ""
    extra = [budget_line(ours[0]["train"] if ours else None, settings, "iterations per training"),
             f"**Data**: atlas {result['data']['atlas'][0]}; unlabelled {', '.join(result['data']['unlabeled'])}"
             f"{' + MNI152 (nilearn) resampled into the grid' if result['data']['mni152'] else ''}; test "
             + "; ".join(t[0] for t in result["data"]["tests"]),
             f"**Scored**: {len(result['structures'])} structures of `brain_eval_labels_recommended`, FreeSurfer IDs, "
             f"at 1 mm on the test scan's grid; Dice and HD95 by `distillseg.common.metrics` (MONAI)",
             "**Total wall time**: " + fmt(result["total_seconds"] / 60, 1, " min")]
    if settings["smoke"]:
        extra.insert(0, "**SMOKE RUN: tiny budgets to check the pipeline; the scores mean nothing.**")
    lines = header("One-shot segmentation on real brain MRI (OASIS atlas → vxm subject)", result["about"]["command"],
                   result["about"], extra)
    lines += ["## Methods side by side", "",
              f"Reference (ref) = the stronger ANTs SyN at {spacing:g} mm{syn_name}; fine ref = ANTs SyN at 1 mm. "
              "Segment time = the whole command per volume (process start to label file written: for ours "
              "`distillseg oneshot segment`, for ANTs one process that registers and warps the labels); speed-up = "
              "the reference's time / this method's time. Peak RSS = the kernel's maximum resident set of that "
              "process.", ""]
    lines += table(METHOD_HEADERS, method_rows(methods, syn, fine)) + [""]
    lines += ["## Targets (issue 6)", ""] + [f"- {c}" for c in checks(methods, spacing)] + [""]
    lines += ["## Our runs", ""] + ours_table(methods) + [""]
    lines += ["## ANTs runs", ""] + ants_table(methods) + [""]
    lines += ["## Dice per structure", "", "![Dice per structure](dice_boxplot.png)", ""]
    lines += structure_table(methods) + [""]
    return "\n".join(lines)


def figures(result: dict, work: Path, out: Path, label_map: dict[int, int] | None) -> list[str]:
    """Learning curves of our trainings and slices of the full method's first test segmentation (markdown lines);
    both read files of the run in ``work``; ``label_map`` turns our label values into the truth's."""
    smoke = " — SMOKE RUN" if result["settings"]["smoke"] else ""
    lines = []
    models = {m["name"].replace("ours: ", ""): m["train"]["model"] for m in result["methods"]
              if m.get("kind") == "ours" and m.get("train")}
    if learning_curves(out / "learning_curves.png", models, "Training losses of `distillseg oneshot train` (from "
                       "each bundle's manifest)" + smoke):
        lines += ["## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    name = result["data"]["tests"][0][0] if result["data"]["tests"] else None
    if name and overlay(out / "segmentation.png", work / "data" / f"test_{name}.nii.gz",
                        work / "segmentations" / "full" / f"test_{name}_seg.nii.gz",
                        work / "data" / f"test_{name}_fs.nii.gz",
                        f"{name}: full method (top) and truth (bottom), same colour = same structure" + smoke,
                        label_map):
        lines += ["## Segmentation of the test scan", "", "![segmentation](segmentation.png)", ""]
    return lines


def write_report(result: dict, out: Path, work: Path | None = None, labels_json: Path | None = None) -> None:
    """The report files in ``out``; with ``work`` (the run's scratch folder) also its figures."""
    write_json(out / "results.json", result)
    boxplot(out / "dice_boxplot.png", dice_series(result["methods"]),
            "Dice per structure (29 structures, OASIS atlas → vxm), "
            f"working resolution {result['settings']['spacing']:g} mm"
            + (" — SMOKE RUN" if result["settings"]["smoke"] else ""))
    label_map = None
    if labels_json and labels_json.is_file():
        mapping = json.loads(labels_json.read_text())["oasis_seg35_to_freesurfer"]
        label_map = {int(k): int(v) for k, v in mapping.items()}
    extra = figures(result, work, out, label_map) if work else []
    write_text(out / "report.md", markdown(result) + "\n" + "\n".join(extra))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "oneshot_brain_benchmark", smoke="tiny budgets everywhere",
                              data="the shared data folder (brain/ and labels.json)")
    parser.add_argument("--oasis-folder", type=Path, default=None,
                        help="a neurite-OASIS folder (subject folders with aligned_norm/aligned_seg35.nii.gz)")
    parser.add_argument("--unlabeled-count", type=int, default=5, help="with --oasis-folder: unlabelled subjects")
    parser.add_argument("--test-count", type=int, default=5, help="with --oasis-folder: test subjects")
    parser.add_argument("--mni", action="store_true", help="add nilearn's MNI152 template as an unlabelled scan")
    parser.add_argument("--spacing", type=float, default=2.0, help="working resolution in mm (ours and ANTs)")
    add_training_options(parser)
    parser.add_argument("--variants", default="full,no_hint,no_recon",
                        help="which of our trainings to run (comma-separated; the full method first)")
    parser.add_argument("--reuse-models", action="store_true",
                        help="keep our bundles an earlier run left in WORK/models instead of training again (their "
                             "times come from the bundles' manifests)")
    parser.add_argument("--skip-ours", action="store_true", help="run only the floor and ANTs (e.g. to fill the cache)")
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    report = partial(write_report, out=out, work=args.work, labels_json=args.data / "labels.json")
    if args.report_only:
        report(read_raw_result(args))
        return 0
    started = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(args, args.work)
    if data is None:
        print(f"Skipped: no brain data in {args.data} (and no --oasis-folder).", file=sys.stderr)
        return 0
    result = {"about": about(), "settings": {"spacing": args.spacing, "threads": args.threads, "smoke": args.smoke,
                                             **training_settings(args), "variants": args.variants,
                                             "reuse_models": args.reuse_models},
              "data": {**data["sources"], "tests": [[t[0], shown(t[1])] for t in data["tests"]]},
              "structures": data["structures"], "methods": [run_floor(data)]}
    result["methods"] += run_ants_methods(data, args.work, ants_methods(args), args.threads, args.reuse)
    if not args.skip_ours:
        result["methods"] += run_ours(args, data, args.work)
    save_run(result, started, args, report)
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
