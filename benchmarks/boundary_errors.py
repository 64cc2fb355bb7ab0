"""Where a segmentation's HD95 comes from: per structure, the two one-way 95th-percentile surface distances whose
larger one is HD95 — predicted surface -> true surface (stray pieces raise it) and true surface -> predicted
surface (missed parts raise it) — beside Dice and the predicted and true volumes.

Why: a high HD95 is often read as "stray islands", and then treated with connected-component rules or a bound around
the registered atlas; neither can help when the prediction is where it should be but misses part of the structure.
This tells the two apart for label maps already made (by ``benchmarks.oneshot_protocols``, ANTs, anything on the
truth's grid), without retraining anything.

    .venv/bin/python -m benchmarks.boundary_errors --truth TRUTH.nii.gz --structures 19 35 \\
        --names NAMES.json --out benchmarks/results/<name> "label A=A.nii.gz" "label B=B.nii.gz" …

``NAMES.json`` maps label values to names (``{"19": "Left-choroid-plexus"}``); every label map holds the truth's
values. Writes ``report.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.harness.cli import log
from benchmarks.harness.paths import shown
from benchmarks.harness.report import about, header, table, write_json, write_text
from distillseg.contract.errors import UserError


def _segmentation(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FILE")
    return name, Path(path)


def measure(truth_path: Path, segmentations: list[tuple[str, Path]], structures: list[int] | None) -> dict:
    """Per segmentation and structure: Dice, HD95 and its two one-way parts (``structure_scores(directed=True)``),
    and the predicted and true volumes in ml."""
    from distillseg.common.metrics import structure_scores
    from distillseg.common.volume_io import read_labels, same_grid

    truth = read_labels(truth_path)
    labels = structures or [int(v) for v in np.unique(truth.array) if v]
    voxel_ml = float(np.prod(truth.spacing)) / 1000
    result = {"truth": shown(truth_path), "structures": labels, "segmentations": {}}
    for name, path in segmentations:
        log(f"{name}: {shown(path)}")
        pred = read_labels(path)
        if not same_grid(pred, truth):
            raise SystemExit(f"{shown(path)} is not on the grid of {shown(truth_path)}.")
        scores = structure_scores(pred.array, truth.array, labels, spacing=truth.spacing, directed=True)
        result["segmentations"][name] = {
            "file": shown(path),
            "structures": {str(k): {**s, "volume_ml": float((pred.array == k).sum()) * voxel_ml,
                                    "true_volume_ml": float((truth.array == k).sum()) * voxel_ml}
                           for k, s in scores.items()}}
    return result


def markdown(result: dict, names: dict[str, str], command: str, facts: dict, seconds: float) -> str:
    lines = header("Where the HD95 comes from: one-way surface distances per structure", command, facts,
                   [f"**Truth**: {result['truth']}; wall time {seconds:.0f} s"])
    lines += ["HD95 is the larger of the two one-way 95th percentiles: *pred → truth* (from the predicted surface to "
              "the true one; stray pieces raise it) and *truth → pred* (from the true surface to the predicted one; "
              "missed parts raise it). Distances in mm, volumes in ml.", ""]
    for label in result["structures"]:
        rows = []
        for seg_name, seg in result["segmentations"].items():
            s = seg["structures"][str(label)]
            rows.append([seg_name, f"{s['dice']:.3f}", f"{s['hd95']:.1f}", f"{s['hd95_pred_to_truth']:.1f}",
                         f"{s['hd95_truth_to_pred']:.1f}", f"{s['volume_ml']:.2f}", f"{s['true_volume_ml']:.2f}"])
        lines += [f"## {names.get(str(label), f'Label {label}')} ({label})", "",
                  *table(["label map", "Dice", "HD95", "pred → truth", "truth → pred", "volume", "true volume"],
                         rows), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.boundary_errors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--truth", type=Path, required=True, help="the true label map")
    parser.add_argument("--structures", type=int, nargs="+", default=None,
                        help="label values to measure (default: every value in the truth but 0)")
    parser.add_argument("--names", type=Path, default=None, help="JSON object: label value -> structure name")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("segmentations", type=_segmentation, nargs="+", metavar="NAME=FILE",
                        help="label maps on the truth's grid, each with the name the report gives it")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {shown(args.out)} is a file, not a report folder")
    names = json.loads(args.names.read_text()) if args.names else {}
    facts, started = about(), time.monotonic()  # the load average is the one at the start
    try:
        result = measure(args.truth, args.segmentations, args.structures)
    except UserError as error:  # the engine's one-sentence reason (a missing or unreadable label map), no traceback
        raise SystemExit(str(error)) from None
    seconds = time.monotonic() - started
    command = facts["command"]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", {"about": facts, "command": command, "seconds": seconds, **result})
    write_text(args.out / "report.md", markdown(result, names, command, facts, seconds))
    log(f"report in {shown(args.out / 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
