"""Mutual information of sampled intensities with Gaussian Parzen windows: MONAI's
``GlobalMutualInformationLoss(kernel_type="gaussian")`` arithmetic, split so that one side's windows can be computed
once and reused.

The pre-alignment compares a few thousand atlas voxels with the scan at the same points, at every one of its ~100
Adam iterations; the atlas side never changes, so its window weights are computed once per pyramid level for every
voxel (``parzen_weights``) and only the scan side is computed (and differentiated) per iteration. Shapes: ``values``
(N,) intensities in [0, 1] (clamped like MONAI's); weights (N, bins), each row summing to 1.
"""

from __future__ import annotations

import torch

SMOOTH = 1e-7  # MONAI's smooth_nr and smooth_dr


def bin_centres(bins: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, float]:
    """The bins' centres in [0, 1] and the Gaussian's ``1 / (2 σ²)`` for σ = half the bin spacing (MONAI's
    ``sigma_ratio=0.5``)."""
    centres = torch.linspace(0.0, 1.0, bins, device=device)
    sigma = float((centres[1:] - centres[:-1]).mean()) * 0.5
    return centres, 1.0 / (2.0 * sigma**2)


def parzen_weights(values: torch.Tensor, bins: int) -> torch.Tensor:
    """Each value's Gaussian window weights over the bins, normalised per value: (N,) -> (N, bins)."""
    centres, preterm = bin_centres(bins, values.device)
    weights = torch.exp(-preterm * (values.clamp(0, 1)[:, None] - centres) ** 2)
    return weights / weights.sum(dim=-1, keepdim=True)


def mutual_information(moving: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
    """Mutual information (a scalar; the loss is its negative) of two samples' window weights (N, bins) each."""
    joint = moving.T @ fixed / moving.shape[0]
    independent = moving.mean(dim=0)[:, None] * fixed.mean(dim=0)[None, :]
    return (joint * torch.log((joint + SMOOTH) / (independent + SMOOTH) + SMOOTH)).sum()
