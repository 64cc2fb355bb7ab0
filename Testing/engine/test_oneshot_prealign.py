"""The pre-alignment's parts: mutual information from cached atlas windows is MONAI's (value and gradient), one
aligner kept for many scans (as the worker keeps it) gives each scan the map a fresh one gives, and the step size
settles along a phase and at finer levels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distillseg.oneshot.geometry import Grid
from distillseg.oneshot.mutual_information import mutual_information, parzen_weights
from distillseg.oneshot.prealign import AtlasAligner, PrealignOptions, _step_scale
from synthetic_volumes import deform, phantom


def test_mutual_information_is_monai_global_mutual_information():
    from monai.losses import GlobalMutualInformationLoss

    generator = torch.Generator().manual_seed(0)
    fixed = torch.rand(3000, generator=generator)
    moving = (0.7 * fixed + 0.3 * torch.rand(3000, generator=generator) - 0.05).requires_grad_(True)
    expected = GlobalMutualInformationLoss(num_bins=32)(moving.reshape(1, 1, -1), fixed.reshape(1, 1, -1))
    (expected_gradient,) = torch.autograd.grad(expected, moving)
    ours = -mutual_information(parzen_weights(moving, 32), parzen_weights(fixed, 32))
    (gradient,) = torch.autograd.grad(ours, moving)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gradient, expected_gradient, rtol=1e-3, atol=1e-8)


def test_a_kept_aligner_gives_each_scan_the_map_a_fresh_one_gives():
    image, labels = phantom((32, 32, 32))
    grid = Grid(image.shape, np.diag([2.0, 2.0, 2.0, 1.0]))
    scans = [torch.from_numpy(deform(image, labels, seed=seed)[0]) for seed in (1, 2)]
    options = PrealignOptions(levels_mm=(8.0, 4.0), rigid_iterations=(8, 4), affine_iterations=(6, 4))
    kept = AtlasAligner(torch.from_numpy(image), grid, options)
    kept.align(scans[0], grid)
    second = kept.align(scans[1], grid)
    np.testing.assert_array_equal(second, AtlasAligner(torch.from_numpy(image), grid, options).align(scans[1], grid))


@pytest.mark.parametrize("level, expected_start", [(0, 1.0), (1, 0.5)])
def test_the_step_settles_along_a_phase_and_at_finer_levels(level, expected_start):
    options = PrealignOptions(levels_mm=(8.0, 4.0), step_decay=0.05, fine_step=0.5)
    scales = [_step_scale(options, level, i, 20) for i in range(20)]
    assert scales[0] == pytest.approx(expected_start) and scales[-1] == pytest.approx(0.05 * expected_start)
    assert all(a >= b for a, b in zip(scales, scales[1:]))
