"""The networks' shapes, and repeatable bf16 gradients on tiny inputs (the oneDNN workaround)."""

from __future__ import annotations

import pytest
import torch

from distillseg.oneshot.unet import FeatureUNet


def test_feature_unet_shapes():
    net = FeatureUNet(1, 5)
    output, features, _ = net(torch.rand(1, 1, 32, 32, 48))
    assert output.shape == (1, 5, 32, 32, 48)
    assert [f.shape for f in features] == [(1, 32, 16, 16, 24), (1, 16, 32, 32, 48)]


def test_bf16_gradients_are_repeatable_and_finite_on_a_tiny_volume():
    """Without ``run_tiny_in_fp32`` the bottleneck's bf16 weight gradient on a 2-voxel input varies from run to run
    and is sometimes inf (oneDNN, torch 2.13 on AVX512-BF16 CPUs)."""
    torch.manual_seed(0)
    net = FeatureUNet(1, 4)
    image = torch.rand(1, 1, 32, 32, 32)
    gradients = []
    for _ in range(4):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output, features, _ = net(image)
        (output.float().square().mean() + sum(f.float().mean() for f in features)).backward()
        gradients.append([p.grad.clone() for p in net.parameters()])
    for later in gradients[1:]:
        assert all(torch.equal(a, b) for a, b in zip(gradients[0], later))
    assert all(torch.isfinite(g).all() for g in gradients[0])


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    net = FeatureUNet(1, 3)
    image = torch.rand(1, 1, 32, 32, 32)
    gradients = []
    for checkpointing in (False, True):
        net.zero_grad()
        net.checkpointing = checkpointing
        output, features, _ = net(image)
        (output.square().mean() + features[0].mean()).backward()
        gradients.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*gradients))


def test_sliding_window_is_chosen_from_the_budget():
    from distillseg.common.errors import OutOfMemoryError
    from distillseg.oneshot.memory_plan import FIXED_OVERHEAD, inference_bytes, sliding_window

    channels, classes, grid = (16, 32, 64, 128, 256), 36, (160, 192, 224)
    whole = inference_bytes(channels, classes, 160 * 192 * 224, half_precision=True)
    assert sliding_window(grid, channels, classes, True, FIXED_OVERHEAD + whole) is None
    window = sliding_window(grid, channels, classes, True, FIXED_OVERHEAD + whole // 5)
    assert window is not None and all(w % 16 == 0 and w <= g for w, g in zip(window, grid))
    assert inference_bytes(channels, classes, window[0] * window[1] * window[2], True) <= whole // 5
    with pytest.raises(OutOfMemoryError, match="--max-memory"):
        sliding_window(grid, channels, classes, True, FIXED_OVERHEAD + 1000)
