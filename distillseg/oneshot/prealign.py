"""Affine pre-alignment of a scan to the atlas (DESIGN §4 step 0).

A user's scans come from other scanners, positions and fields of view; the networks work in the atlas's frame. We
find the 4x4 world map ``T`` (atlas world mm -> scan world mm) that makes ``scan(T · p)`` look like ``atlas(p)``:
initialised by matching intensity centres of mass, then optimised with Adam on the mutual information of MONAI's
``GlobalMutualInformationLoss`` (``mutual_information``) over a coarse-to-fine pyramid, rigid first (rotation +
translation), then affine (+ scales and shears), with a step size that settles along each phase. Parameters act
about the atlas's centre so rotations and translations do not couple.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from distillseg.oneshot.geometry import Grid
from distillseg.oneshot.mutual_information import mutual_information, parzen_weights


@dataclass(frozen=True)
class PrealignOptions:
    """Pyramid levels (mm) and, per level, Adam iterations of the rigid and the affine phase and random voxels per
    iteration for the MI estimate (as ITK's samplers do). Measured on the real brains against the schedule before
    (10 000 voxels a step at both levels, up to 320 steps with early stopping on the smoothed loss):
    ``benchmarks/results/prealign/report.md``. The coarse level only has to find the basin, so it samples few voxels;
    the fine one fixes the result, so it samples more and its steps are smaller."""

    levels_mm: tuple[float, ...] = (8.0, 4.0)
    rigid_iterations: tuple[int, ...] = (30, 15)
    affine_iterations: tuple[int, ...] = (20, 15)
    samples: tuple[int, ...] = (2000, 6000)
    bins: int = 32
    step_decay: float = 0.05  # a phase's step size falls (cosine) to this fraction of its start by its last iteration
    fine_step: float = 0.5    # step size at the finest level relative to the coarsest (geometric in between)
    seed: int = 0


def _pooled(image: torch.Tensor, grid: Grid, target_mm: float) -> tuple[torch.Tensor, Grid]:
    """Block-average (I, J, K) to about ``target_mm`` voxels: an anti-aliased pyramid level that costs one pass and
    no extra memory, unlike Gaussian smoothing of a 1 mm volume with wide kernels."""
    factors = [max(1, int(round(target_mm / s))) for s in grid.spacing]
    if factors == [1, 1, 1]:
        return image, grid
    pooled = torch.nn.functional.avg_pool3d(image[None, None].float(), kernel_size=factors, stride=factors)[0, 0]
    # Voxel (0, 0, 0) of the pooled grid sits at the centre of the first block.
    block = np.diag([*factors, 1.0])
    block[:3, 3] = (np.array(factors) - 1) / 2
    return pooled, Grid(tuple(int(s) for s in pooled.shape), grid.affine @ block)


def _moving_pyramid(image: torch.Tensor, grid: Grid, levels_mm: tuple[float, ...]) -> dict[float, tuple]:
    """``{level_mm: (pooled image, its grid)}``, each level pooled from the next finer one (the full-resolution
    scan is read once, not once per level)."""
    pyramid = {}
    for level_mm in sorted(levels_mm):
        image, grid = _pooled(image, grid, level_mm)
        pyramid[level_mm] = (image, grid)
    return pyramid


def _centre_of_mass(image: torch.Tensor, grid: Grid) -> np.ndarray:
    """Intensity-weighted centre (world mm) of a non-negative image (I, J, K)."""
    weights = image.double().clamp_min(0)
    total = float(weights.sum()) or 1.0
    centre = [float((weights.sum(dim=tuple(a for a in range(3) if a != axis))
                     * torch.arange(image.shape[axis], dtype=torch.float64, device=image.device)).sum()) / total
              for axis in range(3)]
    return (grid.affine @ np.array([*centre, 1.0]))[:3]


def _unravel(flat: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(n,) flat indices into an (I, J, K) array -> (n, 3) float (i, j, k): ``torch.unravel_index``'s numbers without
    its first-call import of sympy (0.6 s of a ``segment`` command)."""
    _, j, k = shape
    return torch.stack([flat // (j * k), (flat // k) % j, flat % k], dim=1).float()


def _world_map(params: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """(12,) parameters -> 4x4 world map (float64): rotation vector, translation mm, log-scales, shears."""
    rotation_vector, translation, log_scale, shear = params[:3], params[3:6], params[6:9], params[9:12]
    zero = torch.zeros((), dtype=params.dtype, device=params.device)
    skew = torch.stack([torch.stack([zero, -rotation_vector[2], rotation_vector[1]]),
                        torch.stack([rotation_vector[2], zero, -rotation_vector[0]]),
                        torch.stack([-rotation_vector[1], rotation_vector[0], zero])])
    rotation = torch.linalg.matrix_exp(skew)
    shear_matrix = torch.eye(3, dtype=params.dtype, device=params.device) + torch.stack([
        torch.stack([zero, shear[0], shear[1]]), torch.stack([zero, zero, shear[2]]), torch.stack([zero, zero, zero])])
    linear = rotation @ torch.diag(torch.exp(log_scale)) @ shear_matrix
    top = torch.cat([linear, (centre + translation - linear @ centre)[:, None]], dim=1)
    return torch.cat([top, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=params.dtype, device=params.device)])


def _adam_step(parameter: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, step: torch.Tensor,
               lr: float = 1.0) -> None:
    """One step of ``torch.optim.Adam(lr=lr)`` through torch's functional Adam: the same arithmetic, but building a
    ``torch.optim`` optimizer imports ``torch._dynamo``, 1-2 s of a whole ``segment`` command on a CPU."""
    from torch.optim.adam import adam

    with torch.no_grad():
        adam([parameter], [parameter.grad], [exp_avg], [exp_avg_sq], [], [step], foreach=False, amsgrad=False,
             beta1=0.9, beta2=0.999, lr=lr, weight_decay=0.0, eps=1e-8, maximize=False)


def _step_scale(options: PrealignOptions, level: int, iteration: int, iterations: int) -> float:
    """The Adam learning rate (a multiple of the per-parameter step sizes) of ``iteration`` of a phase at ``level``:
    smaller at finer levels (``fine_step``), and falling along the phase (``step_decay``), so the last iterations
    settle instead of jittering by a whole step around the optimum of a noisy, sampled loss."""
    levels = len(options.levels_mm)
    level_scale = options.fine_step ** (level / (levels - 1)) if levels > 1 else 1.0
    cosine = 0.5 * (1 + math.cos(math.pi * iteration / max(iterations - 1, 1)))
    return level_scale * (options.step_decay + (1 - options.step_decay) * cosine)


@dataclass
class _Level:
    """One pyramid level of the fixed image: its block-averaged grid and every voxel's Parzen window weights."""

    shape: tuple[int, int, int]
    from_index: torch.Tensor  # (4, 4) float64: level voxel -> fixed world
    weights: torch.Tensor     # (V, bins) float32, V = the level's voxels in flat (i, j, k) order


class AtlasAligner:
    """Finds the world maps that align scans to one fixed image (the atlas on its working grid).

    What depends on the fixed image alone — its pyramid levels, its voxels' Parzen window weights, its centre and
    centre of mass — is computed once here, so a predictor that keeps its aligner (as ``distillseg worker`` keeps
    its models) pays only for the scan's side of each new alignment.
    ``fixed``: (I, J, K) intensities normalised to [0, 1] on ``fixed_grid`` (any device).
    """

    def __init__(self, fixed: torch.Tensor, fixed_grid: Grid, options: PrealignOptions = PrealignOptions()):
        self.options, self.device = options, fixed.device
        self.centre = torch.as_tensor(fixed_grid.affine @ np.array([*(np.array(fixed_grid.shape) - 1) / 2, 1.0]),
                                      dtype=torch.float64, device=self.device)[:3]
        self.centre_of_mass = _centre_of_mass(fixed, fixed_grid)
        self.levels = []
        for level_mm in options.levels_mm:
            pooled, grid = _pooled(fixed, fixed_grid, level_mm)
            self.levels.append(_Level(tuple(pooled.shape), torch.as_tensor(grid.affine, device=self.device),
                                      parzen_weights(pooled.reshape(-1).float(), options.bins)))

    def align(self, moving: torch.Tensor, moving_grid: Grid) -> np.ndarray:
        """World map (4x4, fixed world -> moving world) aligning ``moving`` (I, J, K) in [0, 1] to the fixed image.

        Initialised by the intensity centres of mass, then Adam on the negative mutual information of
        ``options.samples`` random fixed voxels per iteration (a fresh subset each time: cheap, and it smooths the
        MI landscape), level by level, rigid then affine, for a fixed number of iterations whose step size settles
        (``_step_scale``). The random stream restarts from ``options.seed`` for every scan, so a scan gets the same
        map whatever was aligned before it.
        """
        options, device = self.options, self.device
        generator = torch.Generator(device=device).manual_seed(options.seed)
        params = torch.zeros(12, dtype=torch.float64, device=device)
        pyramid = _moving_pyramid(moving, moving_grid, options.levels_mm)
        # The coarsest level's centre of mass is the scan's (block averages keep it), at a hundredth of the cost.
        params[3:6] = torch.as_tensor(_centre_of_mass(*pyramid[max(pyramid)]) - self.centre_of_mass, device=device)
        # Per-parameter step sizes: radians, millimetres, log-scale, shear.
        step = torch.tensor([0.02] * 3 + [1.0] * 3 + [0.01] * 3 + [0.01] * 3, dtype=torch.float64, device=device)
        for level, fixed_level in enumerate(self.levels):
            moving_level, moving_level_grid = pyramid[options.levels_mm[level]]
            to_moving_index = torch.as_tensor(np.linalg.inv(moving_level_grid.affine), device=device)
            moving_batch = moving_level[None, None].float()
            size = torch.tensor(moving_level_grid.shape, dtype=torch.float32, device=device)
            voxels = fixed_level.weights.shape[0]
            for phase, iterations in (("rigid", options.rigid_iterations[level]),
                                      ("affine", options.affine_iterations[level])):
                free = torch.zeros(12, dtype=torch.bool, device=device)
                free[: 6 if phase == "rigid" else 12] = True
                delta = torch.zeros(12, dtype=torch.float64, device=device, requires_grad=True)
                moments = [torch.zeros_like(delta), torch.zeros_like(delta), torch.zeros((), dtype=torch.float32)]
                for iteration in range(iterations):
                    picked = torch.randint(0, voxels, (min(options.samples[level], voxels),), generator=generator,
                                           device=device)
                    ijk = _unravel(picked, fixed_level.shape)
                    current = params + torch.where(free, delta * step, torch.zeros_like(delta))
                    index_map = (to_moving_index @ _world_map(current, self.centre) @ fixed_level.from_index).float()
                    moving_ijk = ijk @ index_map[:3, :3].T + index_map[:3, 3]
                    normalised = (moving_ijk * (2.0 / (size - 1).clamp_min(1)) - 1.0).flip(-1)  # (k, j, i) order
                    warped = F.grid_sample(moving_batch, normalised[None, :, None, None], align_corners=True)
                    loss = -mutual_information(parzen_weights(warped.reshape(-1), options.bins),
                                               fixed_level.weights[picked])
                    delta.grad = None
                    loss.backward()
                    _adam_step(delta, *moments, lr=_step_scale(options, level, iteration, iterations))
                params = (params + torch.where(free, delta.detach() * step, torch.zeros_like(delta))).detach()
        return _world_map(params, self.centre).cpu().numpy()


def prealign(fixed: torch.Tensor, fixed_grid: Grid, moving: torch.Tensor, moving_grid: Grid,
             options: PrealignOptions = PrealignOptions()) -> np.ndarray:
    """World map (4x4, fixed world -> moving world) aligning ``moving`` to ``fixed`` (one-off ``AtlasAligner``).

    ``fixed``, ``moving``: (I, J, K) intensities normalised to [0, 1] on their own grids (any device).
    """
    return AtlasAligner(fixed, fixed_grid, options).align(moving, moving_grid)
