"""Stage 1: train the registration-based augmenter on random pairs of all images (atlas included).

One step draws ``batch_pairs`` ordered pairs (moving, fixed) of distinct images, registers each pair, and minimises
LNCC + λ·smoothness + 0.01·NT-Xent (see ``losses.RegistrationLoss``). Drawing pairs among *all* images — not always
(atlas, target) — keeps the contrastive negatives from being copies of the atlas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from distillseg.oneshot.augmenter import RegistrationAugmenter
from distillseg.oneshot.losses import RegistrationLoss


@dataclass(frozen=True)
class AugmenterOptions:
    iterations: int = 300
    lr: float = 1e-4
    batch_pairs: int = 2
    similarity: str = "lncc"
    window: int = 9
    smooth_weight: float = 1.0
    contrastive_weight: float = 0.01
    temperature: float = 0.5
    half_res: bool = True
    diffeomorphic: bool = True


def build_augmenter(options: AugmenterOptions) -> RegistrationAugmenter:
    return RegistrationAugmenter(half_res=options.half_res, diffeomorphic=options.diffeomorphic)


def draw_pairs(count: int, pairs: int, generator: torch.Generator) -> list[tuple[int, int]]:
    """``pairs`` ordered (moving, fixed) index pairs of distinct images among ``count`` images."""
    drawn = []
    for _ in range(pairs):
        moving = int(torch.randint(count, (), generator=generator))
        fixed = int(torch.randint(count - 1, (), generator=generator))
        drawn.append((moving, fixed + (fixed >= moving)))
    return drawn


def augmenter_step(augmenter: RegistrationAugmenter, loss_function: RegistrationLoss, images: list[torch.Tensor],
                   generator: torch.Generator, batch_pairs: int, autocast) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of one batch of pairs; ``images`` are (1, 1, I, J, K) on the working grid; ``autocast`` a context."""
    pairs = draw_pairs(len(images), batch_pairs, generator)
    moving = torch.cat([images[m] for m, _ in pairs])
    fixed = torch.cat([images[f] for _, f in pairs])
    with autocast:
        velocity, _, fixed_deep = augmenter.velocity(moving, fixed, return_features=True)
        displacement = augmenter.displacement(velocity, moving.shape[2:])
        warped = augmenter.warp(moving, displacement)
        warped_embedding = augmenter.embed(warped) if loss_function.contrastive_weight else None
        fixed_embedding = augmenter.embed_features(fixed_deep) if loss_function.contrastive_weight else None
    return loss_function(warped, fixed, velocity, warped_embedding, fixed_embedding)
