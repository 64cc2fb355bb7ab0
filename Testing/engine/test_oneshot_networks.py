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
    from distillseg.contract.errors import OutOfMemoryError
    from distillseg.oneshot.memory_plan import FIXED_OVERHEAD, inference_bytes, sliding_window

    channels, classes, grid = (16, 32, 64, 128, 256), 36, (160, 192, 224)
    voxels = 160 * 192 * 224
    whole = inference_bytes(channels, classes, voxels, half_precision=True)
    assert sliding_window(grid, channels, classes, True, FIXED_OVERHEAD + whole) is None
    # Windows save the network's activations, not the per-class arrays over the whole grid.
    budget = FIXED_OVERHEAD + inference_bytes(channels, classes, voxels, True, window_voxels=64**3)
    window = sliding_window(grid, channels, classes, True, budget)
    assert window is not None and all(w % 16 == 0 and w <= g for w, g in zip(window, grid))
    assert FIXED_OVERHEAD + inference_bytes(channels, classes, voxels, True, window[0] * window[1] * window[2]) <= budget
    # Measured on a 1 mm brain (36 classes): 4.7 GiB peak with 64³ windows, 7.3 GiB whole grid; the plan may
    # overestimate a little, never underestimate.
    assert 4.7 * 2**30 < budget < 5.2 * 2**30 and 7.33 * 2**30 < FIXED_OVERHEAD + whole < 8.0 * 2**30
    with pytest.raises(OutOfMemoryError, match=r"needs at least .*--max-memory"):
        sliding_window(grid, channels, classes, True, 2 * 2**30)


def test_a_training_without_the_hint_budgets_no_teacher():
    from distillseg.oneshot.memory_plan import training_bytes

    args = ((16, 32, 64, 128, 256), 36, 64**3, True, False)
    outputs = 3 * 36 * 64**3 * 4
    with_teacher, student_only = training_bytes(*args), training_bytes(*args, teacher=False)
    assert with_teacher - outputs == 2 * (student_only - outputs) > 0


def test_atlas_prior_is_a_blurred_one_hot_that_an_untrained_student_reproduces():
    from distillseg.oneshot.atlas_prior import PRIOR_FLOOR, atlas_prior

    classes = torch.zeros(16, 16, 16, dtype=torch.int64)
    classes[4:12, 4:12, 4:12] = 1
    classes[6:10, 6:10, 6:10] = 2
    sharp, blurred = atlas_prior(classes, 3, sigma=0), atlas_prior(classes, 3, sigma=1.0)
    assert torch.equal(sharp.argmax(1)[0], classes)
    assert torch.allclose(blurred.sum(1), torch.ones(1, 16, 16, 16), atol=1e-5)
    assert blurred[0, 1, 4, 8, 8] < 0.9 and blurred[0, 0, 4, 8, 8] > 0.1  # blur crosses the boundary
    net = FeatureUNet(1, 3, (4, 8, 16), prior_channels=3, deep_supervision=1).train()
    torch.nn.init.zeros_(net.head.weight), torch.nn.init.zeros_(net.head.bias)
    out = net(torch.cat([torch.rand(1, 1, 16, 16, 16), sharp], dim=1))
    assert torch.allclose(out.output, sharp.clamp_min(PRIOR_FLOOR).log())
    assert out.auxiliary[0].shape == (1, 3, 8, 8, 8)
    with pytest.raises(ValueError):
        FeatureUNet(1, 3, prior_channels=2)


def test_synthetic_patches_carry_the_prior_at_their_unmoved_position():
    from distillseg.oneshot.augmenter import RegistrationAugmenter
    from distillseg.oneshot.synthesis import SynthesisOptions, SyntheticPairSampler

    shape = (32, 32, 32)
    augmenter = RegistrationAugmenter(encoder_channels=(4, 8, 8, 8), decoder_channels=8, embedding=8)
    atlas = torch.rand(1, 1, *shape)
    classes = (atlas > 0.5).long()
    prior = torch.arange(32.0).view(1, 1, 32, 1, 1).expand(1, 2, *shape).contiguous()  # value = i index
    sampler = SyntheticPairSampler(augmenter, atlas, classes, 2, [torch.rand(1, 1, *shape)],
                                   SynthesisOptions(patch=(16, 16, 16)), prior=prior)
    batch = sampler.sample_batch([torch.Generator().manual_seed(s) for s in (1, 2)])
    assert batch.prior.shape == (2, 2, 16, 16, 16)
    for sample in batch.prior:
        first = int(sample[0, 0, 0, 0])
        assert torch.equal(sample[0, :, 0, 0], torch.arange(first, first + 16.0))  # a plain crop, no affine


def test_atlas_prior_blur_equals_monai_gaussian_filter():
    from monai.networks.layers import GaussianFilter

    from distillseg.oneshot.atlas_prior import atlas_prior

    classes = torch.randint(0, 4, (12, 10, 14))
    onehot = torch.nn.functional.one_hot(classes, 4).permute(3, 0, 1, 2)[None].float()
    expected = GaussianFilter(3, 1.0)(onehot)
    expected = expected / expected.sum(1, keepdim=True)
    assert torch.allclose(atlas_prior(classes, 4, 1.0), expected, atol=1e-5)


def test_atlas_prior_of_small_structures_at_the_border_equals_blurring_every_channel():
    """Bounding-box blurs (structures touching the grid's faces, one absent class) = the whole-grid blur."""
    from monai.networks.layers import GaussianFilter

    from distillseg.oneshot.atlas_prior import atlas_prior

    classes = torch.zeros(20, 18, 22, dtype=torch.int64)
    classes[0:3, 5:9, 10:12] = 1
    classes[12:20, 15:18, 0:4] = 2
    classes[8:11, 8:10, 9:13] = 4
    onehot = torch.nn.functional.one_hot(classes, 5).permute(3, 0, 1, 2)[None].float()
    expected = GaussianFilter(3, 1.5)(onehot)
    expected = expected / expected.sum(1, keepdim=True)
    assert torch.allclose(atlas_prior(classes, 5, 1.5), expected, atol=1e-5)
