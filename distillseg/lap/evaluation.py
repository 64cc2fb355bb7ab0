"""Scores of an IncrementalLap model: IoU and Dice per structure, accumulated over all frames of a data set
(intersection and union summed over frames, the usual semantic-segmentation convention), and mean IoU of the
old, new and all structures of the model's latest step.

A structure is scored only on frames that annotate it (``FrameSet.annotated``): with DSAD's per-structure folders a
frame annotates one structure, with ``multilabel`` or an index-mask folder it annotates all of them. Pixels without a
label (``IGNORE``: an index mask's 255, "uncertain") count for no class, whatever is predicted there.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from distillseg.lap.classes import ClassRegistry
from distillseg.lap.mib_losses import IGNORE


def confusion_scores(predicted: torch.Tensor, truth: torch.Tensor, values: list[int],
                     annotated: torch.Tensor | None = None) -> dict[int, dict[str, float]]:
    """Per class value: IoU and Dice (NaN when the class is absent from both prediction and truth).

    ``predicted``, ``truth``: (N, H, W) integers, ``IGNORE`` in ``truth`` = no label (left out of every count);
    ``annotated``: (N, len(values)) bool, frames to use per class.
    """
    scores = {}
    for column, value in enumerate(values):
        frames = annotated[:, column] if annotated is not None else torch.ones(len(truth), dtype=torch.bool)
        labelled = truth[frames].long() != IGNORE
        p = (predicted[frames] == value) & labelled
        t = truth[frames].long() == value
        intersection = int((p & t).sum())
        union = int((p | t).sum())
        total = int(p.sum()) + int(t.sum())
        scores[value] = {"iou": intersection / union if union else math.nan,
                         "dice": 2 * intersection / total if total else math.nan,
                         "frames": int(frames.sum())}
    return scores


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def group_means(scores: dict[int, dict[str, float]], registry: ClassRegistry, step: int) -> dict[str, float]:
    """Mean IoU/Dice of structures learned before ``step`` (old), in ``step`` (new) and of all of them. A first
    model (step 0) has no old structures and learned nothing new: its structures are the base ones (``base``)."""
    if step == 0:
        groups = {"base": [e.value for e in registry.entries]}
    else:
        groups = {"old": [e.value for e in registry.entries if e.step < step],
                  "new": [e.value for e in registry.entries if e.step == step]}
    groups["all"] = [e.value for e in registry.entries]
    out = {}
    for group, values in groups.items():
        for metric in ("iou", "dice"):
            out[f"mean_{metric}_{group}"] = _mean([scores[v][metric] for v in values if v in scores])
    return out


def named_scores(scores: dict[int, dict[str, float]], registry: ClassRegistry) -> dict[str, dict[str, float]]:
    names = {e.value: e.name for e in registry.entries}
    return {names[v]: s for v, s in scores.items() if v in names}
