"""Stage 1: train the registration-based augmenter on random pairs of all images (atlas included).

A step's global batch holds ``batch_pairs`` ordered pairs (moving, fixed) of distinct images, pair ``i`` drawn from
its own random stream, so that under ``torchrun`` each process takes pairs ``rank, rank + N, …`` and the result
equals one process with the whole batch. Loss: LNCC + λ·smoothness + 0.01·NT-Xent (``losses.RegistrationLoss``);
the NT-Xent compares embeddings gathered from every process. Drawing pairs among *all* images — not always
(atlas, target) — keeps the contrastive negatives from being copies of the atlas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from distillseg.oneshot.augmenter import RegistrationAugmenter
from distillseg.oneshot.instance_optimization import refinement_smoothness
from distillseg.oneshot.losses import RegistrationLoss


@dataclass(frozen=True)
class AugmenterOptions:
    iterations: int = 100
    lr: float = 1e-4
    batch_pairs: int | None = None  # global batch; None: 2, or one per process under torchrun when more
    similarity: str = "lncc"
    window: int = 9
    smooth_weight: float = 1.0
    contrastive_weight: float = 0.01
    temperature: float = 0.5
    half_res: bool = True
    diffeomorphic: bool = True
    decoder_channels: int = 64
    refine_convs: int = 2
    refine_iterations: int = 100   # instance optimisation of each atlas -> target field after training
    refine_lr: float = 0.05
    # The refinement's own smoothness weight (None: ``smooth_weight``). Apart from the network's because they act
    # differently: in training the smoothness term is tiny beside the similarity, while the refinement of one field
    # converges to where similarity and smoothness balance, so its weight sets how far the field may bend.
    refine_smooth_weight: float | None = None

    @property
    def refinement_smoothness(self) -> float:
        return refinement_smoothness(self.smooth_weight, self.refine_smooth_weight)


def build_augmenter(options: AugmenterOptions) -> RegistrationAugmenter:
    return RegistrationAugmenter(decoder_channels=options.decoder_channels, half_res=options.half_res,
                                 diffeomorphic=options.diffeomorphic, refine_convs=options.refine_convs)


def draw_pair(count: int, generator: torch.Generator) -> tuple[int, int]:
    """An ordered (moving, fixed) pair of distinct image indices among ``count`` images."""
    moving = int(torch.randint(count, (), generator=generator))
    fixed = int(torch.randint(count - 1, (), generator=generator))
    return moving, fixed + (fixed >= moving)


def _gather(embedding: torch.Tensor) -> torch.Tensor:
    """Embeddings of the whole global batch, in sample order, keeping gradients (identity in one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embedding
    from torch.distributed.nn.functional import all_gather

    parts = all_gather(embedding)  # rank r holds samples r, r + N, ...: interleave back to sample order
    return torch.stack(parts, dim=1).reshape(-1, embedding.shape[-1])


class AugmenterObjective(nn.Module):
    """The augmenter and its loss as one module, so DistributedDataParallel can wrap a whole step."""

    def __init__(self, augmenter: RegistrationAugmenter, options: AugmenterOptions):
        super().__init__()
        self.augmenter = augmenter
        self.loss = RegistrationLoss(options.similarity, options.window, options.smooth_weight,
                                     options.contrastive_weight, options.temperature)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor, autocast) -> tuple[torch.Tensor, dict[str, float]]:
        """``moving``, ``fixed``: (B, 1, I, J, K) pairs -> (loss, its parts)."""
        augmenter = self.augmenter
        contrastive = self.loss.contrastive_weight > 0
        with autocast:
            velocity, _, fixed_deep = augmenter.velocity(moving, fixed, return_features=True)
            warped = augmenter.warp(moving, augmenter.displacement(velocity, moving.shape[2:]))
            warped_embedding = _gather(augmenter.embed(warped)) if contrastive else None
            fixed_embedding = _gather(augmenter.embed_features(fixed_deep)) if contrastive else None
        # Under DDP every process computes the same global NT-Xent; all_gather's backward sums the gradients of the
        # N copies and DDP divides by N, so the update equals the one-process update (the similarity terms are
        # per-process means over equal shares, which DDP's average turns into the global mean).
        return self.loss(warped, fixed, velocity, warped_embedding, fixed_embedding)


def pair_batch(images: list[torch.Tensor], generators: list[torch.Generator]) -> tuple[torch.Tensor, torch.Tensor]:
    """(moving, fixed) batches (B, 1, I, J, K), one pair per generator."""
    pairs = [draw_pair(len(images), g) for g in generators]
    return torch.cat([images[m] for m, _ in pairs]), torch.cat([images[f] for _, f in pairs])
