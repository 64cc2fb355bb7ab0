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


def _band(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """(size, size) matrix that convolves a length-``size`` axis with the odd, symmetric ``kernel``, zero padded."""
    radius = len(kernel) // 2
    index = torch.arange(size, device=kernel.device)
    offset = index[None, :] - index[:, None]
    return torch.where(offset.abs() <= radius, kernel[(offset + radius).clamp(0, 2 * radius)], kernel.new_zeros(()))


def atlas_prior(classes: torch.Tensor, num_classes: int, sigma: float = 1.0) -> torch.Tensor:
    """Blurred one-hot atlas labels (1, C, I, J, K); ``sigma`` in working-grid voxels (0: the one-hot itself).

    The blur is MONAI's ``GaussianFilter`` (its ``gaussian_1d`` erf kernel truncated at 4 σ, zero padding): the same
    numbers (tested), computed as one banded matrix product per axis, because a depthwise convolution of C channels
    takes about 5 s on a 2-core CPU (a third of a whole ``segment`` command) and the matrix products under 1 s."""
    onehot = F.one_hot(classes.long(), num_classes).permute(3, 0, 1, 2)[None].float()
    if sigma > 0:
        from monai.networks.layers.convutils import gaussian_1d

        kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=4.0, approx="erf").to(onehot.device)
        i, j, k = onehot.shape[2:]
        onehot = torch.einsum("bcijk,kl->bcijl", onehot, _band(kernel, k))
        onehot = torch.einsum("bcijk,jl->bcilk", onehot, _band(kernel, j))
        onehot = torch.einsum("bcijk,il->bcljk", onehot, _band(kernel, i))
    return onehot / onehot.sum(dim=1, keepdim=True).clamp_min(1e-6)


def prior_logits(prior: torch.Tensor) -> torch.Tensor:
    """log(max(prior, PRIOR_FLOOR)), (B, C, ...) -> (B, C, ...): the student's starting logits."""
    return prior.float().clamp_min(PRIOR_FLOOR).log()
