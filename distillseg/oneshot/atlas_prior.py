"""The atlas prior: where each structure lies in the working grid, as a fixed extra input of the student.

Every scan is affinely pre-aligned to the atlas before the student sees it, so on the working grid a structure is
where the atlas has it, give or take the residual (non-linear) anatomical difference. The student gets that as
input — the atlas's one-hot labels blurred by a Gaussian of ``sigma`` voxels, one channel per class — next to the
image, and its logits start from the prior's logarithm (``FeatureUNet(prior_channels=C)``). It then only has to
learn where the scan's boundaries differ from the atlas's, which it learns in hundreds rather than thousands of
steps; a network without the prior must first discover every structure's position and identity from intensity
alone (measured in docs/oneshot.md).

Shape: ``atlas_prior(classes (I, J, K) int64, C)`` -> (1, C, I, J, K) float32 probabilities summing to 1 per voxel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRIOR_FLOOR = 0.01  # smallest prior probability: log-prior logits span at most log(100) ≈ 4.6, easy to overrule


def atlas_prior(classes: torch.Tensor, num_classes: int, sigma: float = 1.0) -> torch.Tensor:
    """Blurred one-hot atlas labels (1, C, I, J, K); ``sigma`` in working-grid voxels (0: the one-hot itself)."""
    from monai.networks.layers import GaussianFilter

    onehot = F.one_hot(classes.long(), num_classes).permute(3, 0, 1, 2)[None].float()
    if sigma > 0:
        with torch.no_grad():
            onehot = GaussianFilter(3, sigma).to(onehot.device)(onehot)
    return onehot / onehot.sum(dim=1, keepdim=True).clamp_min(1e-6)


def prior_logits(prior: torch.Tensor) -> torch.Tensor:
    """log(max(prior, PRIOR_FLOOR)), (B, C, ...) -> (B, C, ...): the student's starting logits."""
    return prior.float().clamp_min(PRIOR_FLOOR).log()
