"""The networks' shapes, and repeatable bf16 gradients on tiny inputs (the oneDNN workaround)."""

from __future__ import annotations

import torch

from distillseg.oneshot.unet import FeatureUNet


def test_feature_unet_shapes():
    net = FeatureUNet(1, 5)
    output, features = net(torch.rand(1, 1, 32, 32, 48))
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
            output, features = net(image)
        (output.float().square().mean() + sum(f.float().mean() for f in features)).backward()
        gradients.append([p.grad.clone() for p in net.parameters()])
    for later in gradients[1:]:
        assert all(torch.equal(a, b) for a, b in zip(gradients[0], later))
    assert all(torch.isfinite(g).all() for g in gradients[0])
