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


def _blur_crop(mask: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable zero-padded blur of a float (I, J, K) array by the 1-D ``kernel``: one banded product per axis."""
    i, j, k = mask.shape
    mask = torch.einsum("ijk,kl->ijl", mask, _band(kernel, k))
    mask = torch.einsum("ijk,jl->ilk", mask, _band(kernel, j))
    return torch.einsum("ijk,il->ljk", mask, _band(kernel, i))


def atlas_prior(classes: torch.Tensor, num_classes: int, sigma: float = 1.0) -> torch.Tensor:
    """Blurred one-hot atlas labels (1, C, I, J, K); ``sigma`` in working-grid voxels (0: the one-hot itself).

    The blur is MONAI's ``GaussianFilter`` (its ``gaussian_1d`` erf kernel truncated at 4 σ, zero padding): the same
    numbers (tested), computed as banded matrix products, because a depthwise convolution of C channels takes about
    5 s on a 2-core CPU (a third of a whole ``segment`` command). Each structure is blurred only inside its bounding
    box grown by the kernel's radius (outside it the blur is exactly 0), and the background, which fills the grid, as
    the blur of 1 (separable: an outer product) minus the structures' blurs: for a brain's 36 classes on a
    96 x 96 x 112 grid, 0.2 s against 1.2 s blurring every channel over the whole grid (a process's first call: 1.1 s
    against 1.5 s)."""
    classes = classes.long()
    if sigma <= 0:
        return F.one_hot(classes, num_classes).permute(3, 0, 1, 2)[None].float()
    from monai.networks.layers.convutils import gaussian_1d

    kernel = gaussian_1d(torch.tensor(float(sigma)), truncated=4.0, approx="erf").to(classes.device)
    radius = len(kernel) // 2
    shape = classes.shape
    prior = torch.zeros(1, num_classes, *shape, device=classes.device)
    # Blur of a grid full of ones under zero padding: the product of each axis's kernel row sums.
    ones = [_band(kernel, size).sum(dim=1) for size in shape]
    prior[0, 0] = ones[0][:, None, None] * ones[1][None, :, None] * ones[2][None, None, :]
    for value in range(1, num_classes):
        where = (classes == value).nonzero()
        if not len(where):
            continue
        low = (where.min(dim=0).values - radius).clamp_min(0).tolist()
        high = [min(h + radius + 1, size) for h, size in zip(where.max(dim=0).values.tolist(), shape)]
        box = (slice(low[0], high[0]), slice(low[1], high[1]), slice(low[2], high[2]))
        blurred = _blur_crop((classes[box] == value).float(), kernel)
        prior[(0, value, *box)] = blurred
        prior[(0, 0, *box)] -= blurred
    prior[0, 0].clamp_(min=0)  # the subtraction leaves rounding-level negatives where no background is near
    return prior / prior.sum(dim=1, keepdim=True).clamp_min(1e-6)


def prior_logits(prior: torch.Tensor) -> torch.Tensor:
    """log(max(prior, PRIOR_FLOOR)), (B, C, ...) -> (B, C, ...): the student's starting logits."""
    return prior.float().clamp_min(PRIOR_FLOOR).log()
