"""Instance optimisation of the augmenter's velocity fields (the refinement step of learned registration).

A registration network trained on a handful of pairs reaches a good but not final alignment; optimising each
(atlas, target) velocity field directly, starting from the network's prediction, with the same loss (similarity +
smoothness) closes the gap in a few hundred cheap iterations (no network in the loop). Learned registration methods
do the same at test time (e.g. the Learn2Reg entries' "instance optimisation"). The refined fields are what the
synthetic pairs are drawn from.
"""

from __future__ import annotations

import torch

from distillseg.oneshot.augmenter import RegistrationAugmenter


def refinement_smoothness(smooth_weight: float, refine_smooth_weight: float | None) -> float:
    """The refinement's smoothness weight: its own when set (``--refine-smooth-weight``), else the augmenter
    network's (``--smooth-weight``) — for a training's options and for a model's recorded ones alike."""
    return smooth_weight if refine_smooth_weight is None else refine_smooth_weight


def refine_velocity(augmenter: RegistrationAugmenter, atlas: torch.Tensor, target: torch.Tensor,
                    velocity: torch.Tensor, iterations: int, lr: float = 0.05, window: int = 9,
                    smooth_weight: float = 1.0, autocast=None, step_callback=None) -> torch.Tensor:
    """Velocity (1, 3, …) that registers ``atlas`` onto ``target`` (both (1, 1, I, J, K)), refined from ``velocity``.

    Adam on LNCC(warped atlas, target) + ``smooth_weight`` · MONAI DiffusionLoss(velocity); ``lr`` in voxels of the
    velocity's grid. ``step_callback(iteration, loss)`` is called after every iteration (progress).
    """
    from monai.losses import DiffusionLoss, LocalNormalizedCrossCorrelationLoss

    similarity = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=window)
    smoothness = DiffusionLoss()
    field = velocity.detach().float().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([field], lr=lr)
    for iteration in range(1, iterations + 1):
        warped = augmenter.warp(atlas, augmenter.displacement(field, atlas.shape[2:]))
        loss = similarity(warped, target) + smooth_weight * smoothness(field)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step_callback is not None:
            step_callback(iteration, float(loss.detach()))
    return field.detach()
