"""``distillseg oneshot evaluate``: segment labelled scans and score each structure (Dice, HD95) with MONAI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from distillseg.common.device import describe_device, peak_memory_bytes
from distillseg.contract.errors import UserError, file_error
from distillseg.common.metrics import structure_scores, summarize
from distillseg.common.reports import write_report
from distillseg.common.volume_io import read_image, read_labels, same_grid
from distillseg.oneshot.jobs import series_uids
from distillseg.oneshot.segment import ScanSteps, keep_largest_components, load_predictor


def split_spec(spec: str) -> tuple[str, str]:
    """``FILE`` or ``FILE:KEY`` -> (file, key); a file whose own name holds a colon stays whole."""
    path, _, key = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    return path, key


def _json_member(spec: str, what: str):
    """Load ``FILE`` or ``FILE:KEY`` (a member of a JSON object)."""
    path, key = split_spec(spec)
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise file_error(path, f"cannot read the {what} as JSON ({exc.__class__.__name__})") from None
    if key:
        if not isinstance(data, dict) or key not in data:
            raise file_error(path, f"has no member '{key}' for the {what}")
        data = data[key]
    return data


def read_label_map(spec: str | None) -> dict[int, int] | None:
    """Model label value -> truth label value, from ``--label-map``."""
    if not spec:
        return None
    data = _json_member(spec, "label map")
    try:
        return {int(k): int(v) for k, v in data.items()}
    except (AttributeError, ValueError, TypeError):
        raise UserError(f"{spec}: the label map must be a JSON object of label values.") from None


def read_structures(spec: str | None) -> list[int] | None:
    """Truth label values to score, from ``--structures`` (comma list or JSON list)."""
    if not spec:
        return None
    if all(part.strip().lstrip("-").isdigit() for part in spec.split(",")):
        return [int(part) for part in spec.split(",")]
    data = _json_member(spec, "structure list")
    try:
        return [int(v) for v in data]
    except (ValueError, TypeError):
        raise UserError(f"{spec}: the structure list must be a JSON list of label values.") from None


def evaluate_files(args, progress) -> dict:
    label_map = read_label_map(args.label_map)
    wanted = read_structures(args.structures)
    predictor = load_predictor(args)
    names = predictor.table.names()
    mapping = label_map or {v: v for v in predictor.values.tolist()}
    truth_names = {mapping[v]: name for v, name in names.items() if v in mapping}
    structures = wanted or sorted(v for v in mapping.values() if v != 0)
    lookup = np.zeros(max(mapping) + 1, dtype=np.int64)
    for source, target in mapping.items():
        lookup[source] = target
    cases = []
    with ScanSteps(progress, "evaluate", len(args.images), predictor) as steps:
        for number, (image_path, labels_path) in enumerate(zip(args.images, args.labels), 1):
            volume, truth = read_image(image_path, series_uids(args)), read_labels(labels_path)
            if not same_grid(volume, truth):
                raise file_error(labels_path, "true labels are not on the image's grid")
            started = time.perf_counter()
            labels = predictor.segment(volume, steps.refining(number - 1)).labels
            labels = keep_largest_components(labels, predictor, args.keep_largest)
            seconds = time.perf_counter() - started
            predicted = lookup[np.clip(labels, 0, len(lookup) - 1)]
            scores = structure_scores(predicted, truth.array, structures, spacing=volume.spacing)
            for value, entry in scores.items():
                entry["name"] = truth_names.get(value, f"Label {value}")
            cases.append({"image": str(image_path), "labels": str(labels_path), "segment_seconds": round(seconds, 2),
                          **summarize(scores), "structures": {str(k): v for k, v in scores.items()}})
            progress.log(f"{image_path}: mean Dice {cases[-1].get('mean_dice', float('nan')):.4f}")
            steps.scanned(number)
    report = {
        "model": str(args.model),
        "predictor": args.predictor,
        "device": describe_device(predictor.device),
        "peak_memory_mb": round(peak_memory_bytes(predictor.device) / 2**20),
        "mean_dice": float(np.mean([c["mean_dice"] for c in cases if "mean_dice" in c])) if cases else None,
        "cases": cases,
    }
    write_report(args.report, report)
    progress.result(report=str(args.report), mean_dice=report["mean_dice"])
    return report
