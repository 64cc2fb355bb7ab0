"""``segment --registration-margin MM`` and the registration union (``segment``'s default;
``--no-registration-union`` turns it off): the learned registration as a check on the student.

Why: the student's overlap matches or beats registration's, but its boundary distances do not (HD95 5.5 mm against
ANTs SyN's 3.2 mm on the unseen brain). The augmenter's warp of the atlas labels is smooth — it never makes islands
far from a structure and carries every piece of a structure along — but it is less exact at the boundaries.

``bound_to_registration`` (``--registration-margin MM``) keeps each student structure's probability only within
``margin_mm`` of the voxels the warped atlas assigns to it; elsewhere the next most likely class takes the voxel. A
structure the registration places nowhere on the grid is left unbounded: there is no evidence of where it should be.
It removes islands but cannot add what the student missed — and most of the gap is missed extent: on the unseen
brain the student's choroid plexus lies within 3 mm of the true one but misses 19-37 mm of it, where the warped
atlas reaches further (8-16 mm; ``benchmarks/results/oneshot_boundary_errors``).

``unite_with_registration`` (the union) gives such structures the union of the student's region and the warped
atlas's. Which structures: those in several pieces in the atlas (``OneShotPredictor.fragmented_classes``) — thin,
fragmented structures are the ones a 2 mm student draws too short, while the warp moves all their pieces; a rule
read off the atlas, not tuned on a test scan. The margin needs the per-scan refined warp (it cuts at the warp's
edge); the union does as well with the network's one-pass warp (docs/oneshot.md).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms.utils import distance_transform_edt


def bound_to_registration(scores: torch.Tensor, warped: torch.Tensor, spacing_mm: np.ndarray,
                          margin_mm: float) -> torch.Tensor:
    """Student class probabilities ``scores`` (C, I, J, K) with each foreground class set to 0 farther than
    ``margin_mm`` (mm, Euclidean, at the working grid's ``spacing_mm`` (3,)) from the voxels where the warped atlas
    one-hot ``warped`` (C, I, J, K) has that class as its most likely one. Background (class 0) is never bounded,
    so every voxel keeps some class. Returns a new tensor on ``scores``' device; ``scores`` is not changed."""
    regions = warped.argmax(dim=0)
    sampling = [float(s) for s in spacing_mm]
    bounded = scores.clone()
    for c in range(1, scores.shape[0]):
        inside = regions == c
        if not bool(inside.any()):
            continue
        # One class at a time: a (C, I, J, K) float64 distance volume would be gigabytes on a 1 mm grid. MONAI's
        # transform measures each voxel's distance to the nearest zero, so the structure is the zeros.
        distance = torch.as_tensor(distance_transform_edt((~inside)[None], sampling=sampling)[0],
                                   device=scores.device)
        bounded[c].masked_fill_(distance > margin_mm, 0.0)
    return bounded


def unite_with_registration(scores: torch.Tensor, warped: torch.Tensor, classes: list[int]) -> torch.Tensor:
    """Student class probabilities ``scores`` (C, I, J, K) where each class index in ``classes`` is also given every
    voxel that the warped atlas one-hot ``warped`` (C, I, J, K) has it as its most likely class (probability 1 there,
    0 for the others); elsewhere the student's probabilities are unchanged, so the student's own voxels of those
    classes stay theirs. Returns a new tensor (``scores`` is not changed)."""
    united = scores.clone()
    registered = warped.argmax(dim=0)
    for c in classes:
        region = registered == c
        united[:, region] = 0.0
        united[c, region] = 1.0
    return united
