"""Every one-shot loss on tiny cases computed by hand, and where the hint's gradient goes."""

from __future__ import annotations

import math

import pytest
import torch

from distillseg.oneshot.losses import RegistrationLoss, hint_loss, reconstruction_loss, segmentation_loss


def test_hint_loss_is_one_minus_cosine_summed_over_levels():
    teacher = [torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0, 0.0]])]
    student = [torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0, 0.0, 0.0]])]
    # level 1: cos = 0 -> 1; level 2: cos = 1/sqrt(2) -> 1 - 0.7071
    expected = 1.0 + (1.0 - 1.0 / math.sqrt(2.0))
    assert float(hint_loss(teacher, student)) == pytest.approx(expected, abs=1e-6)


def test_hint_loss_averages_over_the_batch_and_flattens_channels_and_space():
    teacher = [torch.ones(2, 3, 2, 2)]
    student = [torch.stack([torch.ones(3, 2, 2), -torch.ones(3, 2, 2)])]  # cos 1 and -1
    assert float(hint_loss(teacher, student)) == pytest.approx((0.0 + 2.0) / 2)


def test_hint_gradient_reaches_the_student_and_not_the_detached_teacher():
    teacher = torch.randn(1, 4, 3, 3, 3, requires_grad=True)
    student = torch.randn(1, 4, 3, 3, 3, requires_grad=True)
    hint_loss([teacher], [student]).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None
    teacher.grad = None
    hint_loss([teacher], [student.detach()], train_teacher=True).backward()
    assert teacher.grad is not None and teacher.grad.abs().sum() > 0


def test_hint_loss_refuses_mismatched_features():
    with pytest.raises(ValueError, match="differ in shape"):
        hint_loss([torch.ones(1, 2, 4)], [torch.ones(1, 2, 5)])


def test_reconstruction_losses():
    a = torch.tensor([[0.0, 1.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 0.0]])
    assert float(reconstruction_loss(a, b, "l1")) == pytest.approx((1 + 0 + 2) / 3)
    assert float(reconstruction_loss(a, b, "mse")) == pytest.approx((1 + 0 + 4) / 3)


def test_dice_ce_on_a_two_voxel_case():
    # Two classes, two voxels; logits give p(class 1) = 0.5 everywhere; truth = [0, 1].
    logits = torch.zeros(1, 2, 2, 1, 1)
    truth = torch.tensor([0, 1]).view(1, 1, 2, 1, 1)
    ce = math.log(2)  # -log 0.5 at each voxel
    # MONAI Dice per class: 1 - (2*0.5 + 1e-5)/(1 + 1 + 1e-5) with smooth 1e-5, mean over both classes
    dice = 1 - (2 * 0.5 + 1e-5) / (1.0 + 1.0 + 1e-5)
    assert float(segmentation_loss()(logits, truth)) == pytest.approx(dice + ce, abs=1e-5)


def test_registration_loss_parts():
    torch.manual_seed(0)
    image = torch.rand(1, 1, 12, 12, 12)
    loss = RegistrationLoss(window=3, smooth_weight=2.0, contrastive_weight=0.0)
    # A linear velocity field v_x = 0.5*i has central-difference gradient 0.5 in one of 9 components.
    i = torch.arange(12, dtype=torch.float32).view(1, 12, 1, 1).expand(1, 12, 12, 12)
    velocity = torch.cat([0.5 * i, torch.zeros(1, 12, 12, 12), torch.zeros(1, 12, 12, 12)])[None]
    total, parts = loss(image, image, velocity)
    assert parts["similarity"] == pytest.approx(-1.0, abs=1e-3)  # LNCC of an image with itself
    # MONAI DiffusionLoss: mean over the 3 derivative directions of mean squared gradients.
    assert parts["smoothness"] == pytest.approx(0.25 / 3, rel=1e-4)
    assert float(total) == pytest.approx(parts["similarity"] + 2.0 * parts["smoothness"], abs=1e-5)


def test_nt_xent_by_hand():
    """Two pairs; NT-Xent with tau = 0.5 on unit vectors (MONAI ContrastiveLoss)."""
    loss = RegistrationLoss(window=3, contrastive_weight=1.0, temperature=0.5)
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    image = torch.rand(2, 1, 6, 6, 6)
    velocity = torch.zeros(2, 3, 6, 6, 6)
    _, parts = loss(image, image, velocity, a, b)
    # For each of the 4 embeddings: positive cos 1, one negative copy of itself... sims: same vector 1, other 0.
    # denominator = exp(1/0.5) [positive] + exp(0) + exp(0) [the two orthogonal ones]
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert parts["contrastive"] == pytest.approx(expected, abs=1e-5)


def _objective(**options):
    from distillseg.oneshot.distill import DistillationObjective, DistillOptions, build_networks

    torch.manual_seed(0)
    distill = DistillOptions(channels=(4, 8, 8, 8), **options)
    return DistillationObjective(*build_networks(distill, num_classes=3), distill)


def _tiny_batch():
    generator = torch.Generator().manual_seed(1)
    image, teacher_image = torch.rand(2, 1, 16, 16, 16, generator=generator), torch.rand(2, 1, 16, 16, 16)
    return image, torch.randint(0, 3, (2, 1, 16, 16, 16), generator=generator), teacher_image


def test_hint_adapter_maps_the_student_features_before_the_hint_and_learns():
    import contextlib

    objective = _objective(hint_weight=1.0, hint_adapter=True, atlas_prior=False)
    assert set(objective.training_networks()) == {"teacher", "student", "hint_adapter"}
    assert [a.in_channels for a in objective.hint_adapter] == [8, 4]   # half, then full resolution
    image, classes, teacher_image = _tiny_batch()
    total, parts = objective(image, classes, teacher_image, contextlib.nullcontext())
    _, teacher_features, _ = objective.teacher(teacher_image)
    student_features = objective.student(image).features
    adapted = [adapter(f) for adapter, f in zip(objective.hint_adapter, student_features)]
    assert parts["hint"] == pytest.approx(float(hint_loss(teacher_features, adapted)), rel=1e-5)
    assert parts["hint"] != pytest.approx(float(hint_loss(teacher_features, student_features)), rel=1e-3)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.hint_adapter.parameters())


def test_no_hint_adapter_without_the_option_or_without_the_hint():
    assert _objective().hint_adapter is None
    assert _objective(hint_adapter=True, hint_weight=0.0).hint_adapter is None
    assert set(_objective().training_networks()) == {"student"}                   # no hint: the teacher never trains
    assert set(_objective(hint_weight=1.0).training_networks()) == {"teacher", "student"}


def test_without_the_hint_the_teacher_does_not_run():
    import contextlib

    objective = _objective(hint_weight=0.0, atlas_prior=False)
    image, classes, teacher_image = _tiny_batch()
    total, parts = objective(image, classes, teacher_image, contextlib.nullcontext())
    assert set(parts) == {"seg"} and float(total) == pytest.approx(parts["seg"])
    total.backward()
    assert all(p.grad is None for p in objective.teacher.parameters())
    assert any(p.grad is not None for p in objective.student.parameters())
