"""Resampling between grids, the augmenter's warping, and the affine pre-alignment on a phantom."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import affine_transform

from conftest import random_affine
from distillseg.oneshot.augmenter import RegistrationAugmenter
from distillseg.oneshot.geometry import Grid, resample, resample_argmax, resample_labels, working_grid
from distillseg.oneshot.prealign import PrealignOptions, prealign
from synthetic_volumes import phantom


def test_resample_matches_scipy_for_oblique_grids():
    rng = np.random.default_rng(0)
    src = Grid((9, 10, 11), random_affine(rng))
    dst = Grid((7, 8, 9), random_affine(rng, spacing=(1.1, 0.9, 1.7), flip=(True, False, True)))
    world = np.eye(4)
    world[:3, 3] = [1.0, -2.0, 0.5]
    data = rng.normal(size=src.shape).astype(np.float32)
    ours = resample(torch.from_numpy(data)[None], src, dst, world)[0].numpy()
    index_map = np.linalg.inv(src.affine) @ world @ dst.affine
    reference = affine_transform(data, index_map[:3, :3], index_map[:3, 3], output_shape=dst.shape, order=1,
                                 mode="constant", cval=0.0)
    inside = reference != 0
    np.testing.assert_allclose(ours[inside], reference[inside], atol=1e-4)


def test_identity_resampling_and_label_resampling_are_exact():
    rng = np.random.default_rng(1)
    grid = Grid((6, 7, 8), random_affine(rng))
    data = torch.from_numpy(rng.normal(size=grid.shape).astype(np.float32))[None]
    torch.testing.assert_close(resample(data, grid, grid), data, atol=1e-5, rtol=0)
    labels = torch.from_numpy(rng.choice([0, 4, 9], size=grid.shape))
    index = resample_labels(labels, [0, 4, 9], grid, grid)
    assert torch.equal(torch.tensor([0, 4, 9])[index], labels)
    scores = torch.nn.functional.one_hot(index, 3).permute(3, 0, 1, 2).float()
    assert torch.equal(resample_argmax(scores, grid, grid), index)


def test_working_grid_is_a_multiple_of_16_and_covers_the_bounds():
    reference = Grid((100, 90, 40), np.diag([1.0, 1.2, 3.0, 1.0]))
    grid = working_grid(reference, 2.0, bounds_ijk=(np.array([10, 10, 5]), np.array([80, 70, 30])), margin_mm=4.0)
    assert all(s % 16 == 0 for s in grid.shape)
    np.testing.assert_allclose(grid.spacing, [2.0, 2.0, 2.0])
    low = np.linalg.inv(grid.affine) @ reference.affine @ np.array([10, 10, 5, 1.0])
    high = np.linalg.inv(grid.affine) @ reference.affine @ np.array([80, 70, 30, 1.0])
    assert np.all(low[:3] >= 0) and np.all(high[:3] <= np.array(grid.shape) - 1)


def test_zero_displacement_warp_is_identity_and_zero_velocity_integrates_to_zero():
    net = RegistrationAugmenter()
    image = torch.rand(1, 2, 16, 16, 16)
    zero = torch.zeros(1, 3, 8, 8, 8)
    displacement = net.displacement(zero, (16, 16, 16))
    assert displacement.shape == (1, 3, 16, 16, 16) and float(displacement.abs().max()) == 0.0
    torch.testing.assert_close(net.warp(image, displacement), image)


def test_half_resolution_displacement_is_rescaled_to_full_voxels():
    net = RegistrationAugmenter(diffeomorphic=False)
    velocity = torch.ones(1, 3, 8, 8, 8)  # one half-grid voxel everywhere
    displacement = net.displacement(velocity, (16, 16, 16))
    torch.testing.assert_close(displacement, torch.full_like(displacement, 15 / 7))


@pytest.mark.slow
def test_prealign_recovers_a_moved_header():
    image, _ = phantom((40, 40, 40))
    fixed_grid = Grid(image.shape, np.diag([2.0, 2.0, 2.0, 1.0]))
    from scipy.spatial.transform import Rotation

    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec(np.deg2rad(12.0) * np.array([0.6, 0.8, 0.0])).as_matrix()
    motion[:3, 3] = [10.0, -6.0, 4.0]
    moving_grid = Grid(image.shape, motion @ fixed_grid.affine)  # the same voxels, moved in the world
    fixed = torch.from_numpy(image)
    world_map = prealign(fixed, fixed_grid, fixed, moving_grid, PrealignOptions(levels_mm=(6.0, 3.0)))
    corners = np.array([[-30, -30, -30, 1], [30, 30, 30, 1], [30, -30, 0, 1]], dtype=float).T + np.array(
        [[40], [40], [40], [0]])
    error = np.linalg.norm((world_map @ corners - motion @ corners)[:3], axis=0)
    assert error.max() < 1.5, error


def test_instance_optimisation_improves_the_alignment_of_a_deformed_phantom():
    from distillseg.oneshot.instance_optimization import refine_velocity
    from synthetic_volumes import deform

    image, labels = phantom((32, 32, 32))
    moved_image, moved_labels = deform(image, labels, seed=3, strength=2.5)
    net = RegistrationAugmenter()
    atlas = torch.from_numpy(image)[None, None]
    target = torch.from_numpy(moved_image)[None, None]
    losses = []
    velocity = refine_velocity(net, atlas, target, torch.zeros(1, 3, 16, 16, 16), 40, lr=0.1, window=5,
                               step_callback=lambda step, loss: losses.append(loss))
    assert losses[-1] < losses[0] - 0.02
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 6).permute(3, 0, 1, 2)[None].float()
    warped = net.warp(onehot, net.displacement(velocity, (32, 32, 32)))[0].argmax(0).numpy()

    def dice(a, b, value):
        return 2 * np.sum((a == value) & (b == value)) / (np.sum(a == value) + np.sum(b == value))

    before = np.mean([dice(labels, moved_labels, v) for v in (1, 2, 5)])
    after = np.mean([dice(warped, moved_labels, v) for v in (1, 2, 5)])
    assert after > before + 0.02, (before, after)


def test_fast_argmax_equals_interpolating_every_class():
    """The uniform-cell shortcut of ``resample_argmax`` must give exactly the brute-force answer."""
    from distillseg.oneshot.geometry import resample_slabs

    rng = np.random.default_rng(7)
    src = Grid((12, 14, 10), random_affine(rng, spacing=(2.0, 2.0, 2.0)))
    dst = Grid((25, 27, 20), src.affine @ np.diag([0.5, 0.5, 0.5, 1.0]) @ np.array(
        [[1, 0, 0, -3], [0, 1, 0, -2], [0, 0, 1, 1], [0, 0, 0, 1.0]]))
    blocks = np.kron(rng.integers(0, 4, (3, 4, 3)), np.ones((4, 4, 4)))[:12, :14, :10]
    scores = torch.nn.functional.one_hot(torch.from_numpy(blocks).long(), 4).permute(3, 0, 1, 2).float()
    scores = scores + 0.3 * torch.rand(4, 12, 14, 10)
    world = np.eye(4)
    world[:3, 3] = [1.3, -0.7, 2.1]
    brute = torch.empty(dst.shape, dtype=torch.int64)
    for start, stop, values in resample_slabs(scores, src, dst, world):
        brute[start:stop] = values.argmax(0)
    assert torch.equal(resample_argmax(scores, src, dst, world, slab_voxels=3000), brute)


def test_prealign_adam_step_is_torch_adam():
    from distillseg.oneshot.prealign import _adam_step

    target = torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ours = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    theirs = ours.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([theirs], lr=1.0)
    moments = [torch.zeros_like(ours), torch.zeros_like(ours), torch.zeros(())]
    for _ in range(10):
        ours.grad = None
        ((ours - target) ** 2 * target).sum().backward()
        _adam_step(ours, *moments)
        optimizer.zero_grad()
        ((theirs - target) ** 2 * target).sum().backward()
        optimizer.step()
    assert torch.equal(ours, theirs)


def test_prealign_unravel_is_torch_unravel_index():
    from distillseg.oneshot.prealign import _unravel

    shape = (7, 5, 9)
    flat = torch.randint(0, 7 * 5 * 9, (200,), generator=torch.Generator().manual_seed(0))
    expected = torch.stack(torch.unravel_index(flat, shape), dim=1).float()
    assert torch.equal(_unravel(flat, shape), expected)
