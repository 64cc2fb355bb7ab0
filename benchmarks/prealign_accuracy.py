"""Pre-alignment before and after issue 20, on the real brains: its cost and its accuracy, several cases and seeds.

The engine's affine pre-alignment (``distillseg.oneshot.prealign``) brings every scan to the atlas before the
student sees it. Issue 20 made it cheaper (fewer sampled voxels at the coarse level, a step size that settles along
each phase instead of early stopping on a noisy loss, the atlas's side computed once per aligner). This script runs
the version of commit ``--baseline`` (read from git, default the commit before issue 20) and the current one on the
same cases, in this process, one after the other:

- fixed image: the OASIS atlas on the working grid ``train`` makes for it (``--spacing 2``, the brain benchmark's);
- moving scans: the vxm scan (under the OASIS header, as the brain benchmark reads it), the same scan with its
  header rotated by 15° and shifted by 20 mm, and the OASIS scan itself under three known header motions (10°, 20°,
  25°, with shifts of 13 to 30 mm), whose true map is therefore known;
- seeds 0, 1, 2 of the pre-alignment's random sampling.

Per case, version and seed: seconds of the alignment (in-process, ``--threads`` threads), the error against the true
map where it is known (mean and max over the atlas's labelled voxels, mm), and the mean Dice over the 29 evaluation
structures of the atlas labels carried onto the scan by the affine map alone (nearest neighbour; vxm against its
FreeSurfer labels, OASIS against its own): the segmentation an affine registration alone gives. Writes
``benchmarks/results/prealign/{report.md,results.json}``.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness.cli import benchmark_parser, log, rebuilt_only, report_folder, save_run
from benchmarks.harness.paths import REPO
from benchmarks.harness.report import about, fmt, header, section, write_json, write_text
from benchmarks.harness.scale_cases import one_header_brain

NAME = "prealign"
MOTIONS = [("OASIS, header moved 10°", 10.0, (1, 0, 0), (10, -5, 8)),
           ("OASIS, header moved 20°", 20.0, (0, 1, 1), (-15, 12, 20)),
           ("OASIS, header moved 25°", 25.0, (1, -1, 0.5), (20, 20, -10))]
SEEDS = (0, 1, 2)
CASES_INTRO = ("Fixed image: the OASIS atlas on the working grid `train --spacing 2` makes for it (the brain "
               "benchmark's). Moving: the vxm scan (under the OASIS header, as the brain benchmark reads it), the same "
               "with its header rotated by 15° and shifted by 20 mm, and the OASIS scan itself under three known header "
               "motions, whose true map is known. Time: the alignment alone, in this process. Error: distance between "
               "the found and the true map over every 50th labelled atlas voxel. Affine-only Dice: the atlas labels "
               "carried onto the scan by the map alone (nearest neighbour), mean over the 29 evaluation structures "
               "(vxm: against its FreeSurfer labels; OASIS: against its own).")


def baseline_module(commit: str):
    """``distillseg/oneshot/prealign.py`` as it was at ``commit``, imported as a module of its own."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:distillseg/oneshot/prealign.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(f"/tmp/prealign_{commit}.py")
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"prealign_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it is being executed
    spec.loader.exec_module(module)
    return module


def _motion(degrees: float, axis, shift, centre: np.ndarray) -> np.ndarray:
    """4x4 world motion: a rotation by ``degrees`` about ``axis`` through ``centre``, then ``shift`` mm."""
    from scipy.spatial.transform import Rotation

    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec(np.radians(degrees) * axis).as_matrix()
    motion[:3, 3] = centre - motion[:3, :3] @ centre + np.asarray(shift, dtype=float)
    return motion


def cases(data: Path, work: Path) -> tuple[dict, list[dict]]:
    """The fixed side (atlas on its working grid, its labels in FreeSurfer IDs) and the moving cases."""
    import nibabel as nib

    from distillseg.oneshot.data import prepare_atlas

    oasis, seg35, scan, truth = one_header_brain(data, work / "data")
    tables = json.loads((data / "labels.json").read_text())
    lookup = np.zeros(256, dtype=np.int64)
    for source, target in tables["oasis_seg35_to_freesurfer"].items():
        lookup[int(source)] = int(target)
    atlas_file = nib.load(oasis)
    affine, labels = atlas_file.affine, lookup[np.rint(np.asarray(nib.load(seg35).dataobj)).astype(np.int64)]
    labelled = np.argwhere(labels > 0)[::50]  # where the errors are measured: every 50th labelled voxel
    fixed = {"atlas": prepare_atlas(str(oasis), str(seg35), spacing=2.0), "affine": affine, "labels": labels,
             "structures": [int(s) for s in tables["brain_eval_labels_recommended"]],
             "points": affine @ np.c_[labelled, np.ones(len(labelled))].T}
    vxm = np.asarray(nib.load(scan).dataobj, dtype=np.float32)
    vxm_truth = np.rint(np.asarray(nib.load(truth).dataobj)).astype(np.int64)
    image = np.asarray(atlas_file.dataobj, dtype=np.float32)
    centre = affine[:3, :3] @ ((np.array(image.shape) - 1) / 2) + affine[:3, 3]
    moved = _motion(15.0, (1, 1, 1), 20 * np.ones(3) / np.sqrt(3), centre)
    moving = [{"name": "vxm", "image": vxm, "affine": affine, "truth_map": None, "truth": vxm_truth},
              {"name": "vxm, header moved 15° / 20 mm", "image": vxm, "affine": moved @ affine, "truth_map": None,
               "truth": vxm_truth}]
    for name, degrees, axis, shift in MOTIONS:
        motion = _motion(degrees, axis, shift, centre)
        moving.append({"name": name, "image": image, "affine": motion @ affine, "truth_map": motion,
                       "truth": labels})
    return fixed, moving


def _dice(fixed: dict, case: dict, world_map: np.ndarray) -> float:
    """Mean Dice of the atlas labels carried onto the scan's grid by ``world_map`` (nearest neighbour)."""
    import torch

    from distillseg.oneshot.geometry import Grid, resample

    carried = resample(torch.from_numpy(fixed["labels"].astype(np.float32))[None], Grid(fixed["labels"].shape,
                       fixed["affine"]), Grid(case["image"].shape, case["affine"]), np.linalg.inv(world_map),
                       mode="nearest")[0].numpy().astype(np.int64)
    scores = []
    for structure in fixed["structures"]:
        a, b = carried == structure, case["truth"] == structure
        scores.append(2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))
    return float(np.mean(scores))


def measure(fixed: dict, moving: list[dict], versions: dict, seeds: tuple[int, ...]) -> list[dict]:
    import torch

    from distillseg.oneshot.geometry import Grid

    atlas, rows = fixed["atlas"], []
    for version, align in versions.items():
        for seed in seeds:
            for case in moving:
                scan = torch.from_numpy(atlas.normalization.apply(case["image"]))
                started = time.perf_counter()
                world_map = align(atlas, scan, Grid(case["image"].shape, case["affine"]), seed)
                row = {"version": version, "seed": seed, "case": case["name"],
                       "seconds": round(time.perf_counter() - started, 3), "dice": _dice(fixed, case, world_map)}
                if case["truth_map"] is not None:
                    error = np.linalg.norm((world_map @ fixed["points"] - case["truth_map"] @ fixed["points"])[:3],
                                           axis=0)
                    row.update(error_mean_mm=float(error.mean()), error_max_mm=float(error.max()))
                rows.append(row)
                log(f"{version} seed {seed} {case['name']}: {row['seconds']:.2f} s, Dice {row['dice']:.4f}")
    return rows


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.mean(values) if values else None


def markdown(result: dict) -> str:
    rows, versions = result["rows"], list(dict.fromkeys(r["version"] for r in result["rows"]))
    lines = header("Pre-alignment before and after issue 20 (real brains)", result["about"]["command"],
                   result["about"], [f"**Versions**: {', '.join(versions)}; seeds "
                                     f"{', '.join(map(str, result['seeds']))}; {result['threads']} thread(s)"])
    table_rows = []
    for case in dict.fromkeys(r["case"] for r in rows):
        for version in versions:
            chosen = [r for r in rows if r["case"] == case and r["version"] == version]
            dice = [r["dice"] for r in chosen]
            table_rows.append([case, version, fmt(_mean(chosen, "seconds"), 2, " s"),
                               fmt(_mean(chosen, "error_mean_mm"), 2, " mm"),
                               fmt(max((r.get("error_max_mm", float("nan")) for r in chosen), default=None), 2, " mm"),
                               f"{statistics.mean(dice):.4f} ± {statistics.pstdev(dice):.4f}"])
    lines += section("Per case (mean over the seeds)", CASES_INTRO,
                     ["case", "version", "time", "error (mean)", "error (max)", "affine-only Dice ± sd"], table_rows)
    summary = []
    for version in versions:
        chosen = [r for r in rows if r["version"] == version]
        summary.append([version, fmt(_mean(chosen, "seconds"), 2, " s"), fmt(_mean(chosen, "error_mean_mm"), 3, " mm"),
                        fmt(_mean([r for r in chosen if r["case"].startswith("vxm")], "dice"), 4),
                        fmt(_mean([r for r in chosen if r["case"].startswith("OASIS")], "dice"), 4)])
    lines += section("Summary", "Means over every case and seed of each version.",
                     ["version", "time", "error vs the true map", "Dice, vxm cases", "Dice, OASIS cases"], summary)
    if len(versions) == 2:
        before, now = ([r for r in rows if r["version"] == v] for v in versions)
        vxm_dice = [_mean([r for r in chosen if r["case"].startswith("vxm")], "dice") for chosen in (before, now)]
        error = [_mean(chosen, "error_mean_mm") for chosen in (before, now)]
        lines += [f"- cost: {_mean(before, 'seconds') / _mean(now, 'seconds'):.1f}× less time "
                  f"({fmt(_mean(now, 'seconds'), 2, ' s')} vs {fmt(_mean(before, 'seconds'), 2, ' s')})"]
        if None not in error:
            lines.append(f"- error against the true map: {error[1] - error[0]:+.3f} mm")
        if None not in vxm_dice:
            lines.append(f"- affine-only Dice on the vxm cases: {vxm_dice[1] - vxm_dice[0]:+.4f}")
    return "\n".join(lines + [""])


def write_report(result: dict, out: Path) -> None:
    write_json(out / "results.json", result)
    write_text(out / "report.md", markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, NAME, "prealign_benchmark", smoke="one seed, one moved-OASIS case")
    parser.add_argument("--baseline", default="d055239", help="commit whose pre-alignment is 'before'")
    args = parser.parse_args(argv)
    out = report_folder(args, NAME)
    if rebuilt_only(args, out, write_report):
        return 0
    if not (args.data / "brain").is_dir():
        print(f"Skipped: the brain data are not in {args.data}.", file=sys.stderr)
        return 0
    import torch

    from distillseg.oneshot.prealign import AtlasAligner, PrealignOptions

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    old = baseline_module(args.baseline)
    fixed, moving = cases(args.data, args.work)
    seeds = SEEDS[:1] if args.smoke else SEEDS
    if args.smoke:
        moving = moving[2:3]
    versions = {
        f"before ({args.baseline})": lambda atlas, scan, grid, seed: old.prealign(
            atlas.image, atlas.grid, scan, grid, old.PrealignOptions(seed=seed)),
        "now": lambda atlas, scan, grid, seed: AtlasAligner(atlas.image, atlas.grid,
                                                            PrealignOptions(seed=seed)).align(scan, grid)}
    result = {"about": about(), "threads": args.threads, "seeds": list(seeds),
              "rows": measure(fixed, moving, versions, seeds)}
    save_run(result, started, args, lambda done: write_report(done, out))
    log(f"report in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
