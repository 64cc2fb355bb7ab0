"""§6 of the speed benchmark: a brain segmentation as the Slicer modules now run it (the engine worker, second scan
with the same model), as one ``segment`` command (cold: interpreter, imports, model loading, then the same work),
and ANTs SyN label propagation on the same brain, all in one run.

The brain is the shared pair at 1 mm (160×192×224): the OASIS atlas and its seg35 labels, the vxm scan given the
OASIS header (the two share one voxel grid and their headers disagree; ``../shared/data/README.md``), as the brain
benchmark reads them. Our model is the brain benchmark's full method (``train`` with ``--spacing 2``, the rest
defaults: 64³ training patches, atlas prior), from a minimal training (no augmenter steps, one student step):
weights do not change what a segmentation costs, and the labels of the warm worker and the cold command are compared
voxel by voxel here (and in ``Testing/engine/test_worker.py``), so the accuracy is the full model's, reported by the
brain benchmark. The worker gets the atlas image as its first scan (loading the model) and the vxm scan as the
second, the one timed. ANTs: SyN (40, 20) at 2 mm and SyN with its defaults at 1 mm, as in the brain benchmark, each
one process (``harness.ants``); its registration alone is stated too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .ants import run_ants
from .oneshot import SMOKE_ANTS
from .report import fmt, ratio, section
from .run import distillseg
from .scale_cases import one_header_brain
from .worker_runs import worker_requests

SYN_2MM = "ANTs SyN (40, 20) @ 2 mm"
SYN_1MM = "ANTs SyN defaults @ 1 mm"
TARGETS = {SYN_2MM: 5.0, SYN_1MM: 10.0}  # issue 20: the warm worker this many times faster


def _brain(data: Path, folder: Path, smoke: bool, cases: list[dict]) -> tuple[Path, Path, Path]:
    """(atlas, atlas labels, scan): the 1 mm pair under one header; a smoke run takes the 2 mm copies
    (``cases[0]``)."""
    if smoke:
        return cases[0]["atlas"], cases[0]["labels"], cases[0]["input"]
    return one_header_brain(data, folder)[:3]


def _same_labels(a: Path, b: Path) -> bool:
    import nibabel as nib

    first, second = nib.load(a), nib.load(b)
    return bool(np.array_equal(np.asarray(first.dataobj), np.asarray(second.dataobj))
                and np.allclose(first.affine, second.affine))


def warm_costs(data: Path, work: Path, threads: int, smoke: bool, cases: list[dict]) -> dict:
    """The measurements of the module docstring."""
    folder = work / "warm"
    atlas, labels, scan = _brain(data, folder, smoke, cases)
    model = folder / "model"
    if not (model / "manifest.json").is_file():
        distillseg("train", "--atlas", atlas, "--atlas-labels", labels, "--unlabeled", scan, "--out", model,
                   "--spacing", 2, "--augmenter-iterations", 0, "--refine-iterations", 0, "--iterations", 1,
                   threads=threads)
    outputs = folder / "labels"
    shutil.rmtree(outputs, ignore_errors=True)
    cold = distillseg("segment", "--model", model, "--input", scan, "--output", outputs / "cold.nii.gz",
                      threads=threads)
    segment = ["oneshot", "segment", "--model", model, "--device", "cpu", "--threads", threads]
    worker = worker_requests([[*segment, "--input", atlas, "--output", outputs / "first.nii.gz"],
                              [*segment, "--input", scan, "--output", outputs / "warm.nii.gz"]])
    first, second = worker["requests"]
    ants = {}
    for name, spacing, iterations in ((SYN_2MM, 2.0, SMOKE_ANTS["syn"] if smoke else (40, 20)),
                                      (SYN_1MM, None, SMOKE_ANTS["syn_fine"] if smoke else None)):
        ants[name] = run_ants(folder / name.replace(" ", "_").replace("@", "at"), scan, atlas, labels, "SyN",
                              spacing, iterations, threads, reuse=False,
                              aff_iterations=SMOKE_ANTS["affine"] if smoke else None)
    import nibabel as nib

    return {"input_shape": list(nib.load(scan).shape[:3]),
            "cold": {**cold.summary(), "in_process_seconds": cold.result["seconds"][0]},
            "worker_first": first, "worker_second": second, "worker_peak_rss_mb": worker["peak_rss_mb"],
            "labels_identical": _same_labels(outputs / "cold.nii.gz", outputs / "warm.nii.gz"),
            "ants": {name: {k: run[k] for k in ("seconds", "registration_seconds", "peak_tree_rss_mb")}
                     for name, run in ants.items()}}


WARM_INTRO = ("Brain {shape} (the shared OASIS → vxm pair), segmented with the full method's network and "
              "working grid (minimal training: weights do not change the cost). *Cold*: the whole `distillseg oneshot "
              "segment` process. *Worker*: `distillseg worker`, time from request to its `done` line; the first "
              "request loads the model, the second (another scan, same model) is what each later Segment press costs "
              "in Slicer. ANTs: one process per registration, as in the brain benchmark; its registration alone in "
              "brackets. Peak RSS of the worker: the whole process over both requests.")


def warm_section(warm: dict) -> list[str]:
    second, cold = warm["worker_second"]["seconds"], warm["cold"]
    rows = [["`segment` command (cold)", fmt(cold["seconds"], 2, " s"),
             fmt(cold["in_process_seconds"], 2, " s") + " in-process", f"{cold['peak_tree_rss_mb']} MB"],
            ["worker, first scan (starts, loads the model)", fmt(warm["worker_first"]["seconds"], 2, " s"), "", ""],
            ["**worker, second scan (warm)**", f"**{fmt(second, 2, ' s')}**", "",
             f"{warm['worker_peak_rss_mb']} MB (worker)"]]
    for name, run in warm["ants"].items():
        rows.append([name, fmt(run["seconds"], 1, " s"), f"({fmt(run['registration_seconds'], 1, ' s')} "
                                                         "registration)", f"{run['peak_tree_rss_mb']} MB"])
    lines = section("6. Warm worker vs cold command vs ANTs SyN (measured, CPU)",
                    WARM_INTRO.format(shape="×".join(map(str, warm["input_shape"]))), ["run", "time", "", "peak RSS"],
                    rows)
    lines += [f"- Labels of the warm worker identical to the cold command's: "
              f"**{'yes' if warm['labels_identical'] else 'NO'}**"]
    for name, target in TARGETS.items():
        run = warm["ants"][name]
        speedup = run["seconds"] / second
        verdict = "met" if speedup >= target else f"MISSED by {target - speedup:.1f}×"
        lines.append(f"- warm worker vs {name}: {speedup:.1f}× faster (target ≥ {target:g}×: {verdict}); against "
                     f"its registration alone {ratio(run['registration_seconds'], second)}")
    return lines + [""]
