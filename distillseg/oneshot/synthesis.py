"""Synthetic labelled pairs drawn on the fly from the frozen augmenter (DESIGN §4 step 2).

For each unlabelled target y_i the augmenter's velocity field v_i (atlas -> y_i) is computed once. A sample then:

1. mixes two deformations, BRBS-style: v = λ·v_i + (1-λ)·v_j with λ ~ Beta(β, β) and partner j another target or
   the atlas itself (v = 0), so samples lie near real anatomies and between them;
2. optionally transfers appearance, DataAug-style: the atlas plus the mixed intensity residual
   r_i = y_i∘φ_i⁻¹ - x (computed once in atlas space), so the student sees the targets' contrast, not only the atlas's;
3. applies a small random affine (robustness to the residual error of the pre-alignment);
4. warps the atlas image and its one-hot labels (linear, then argmax) with the integrated field, all in one
   sampling pass restricted to a random patch, and gives the teacher the *real* image that dominates the mix,
   under the same affine;
5. jitters the student's intensities (gamma, Gaussian noise);
6. crops the fixed atlas prior (when given) at the patch's *unmoved* position: the prior stays where pre-alignment
   puts the atlas, so the random affine also teaches the student to trust the image over a misplaced prior.

Shapes: images (1, 1, P, Q, R) in [0, 1], classes (1, 1, P, Q, R) int64, with (P, Q, R) the patch (default the whole
working grid). Everything random comes from the ``torch.Generator`` passed to ``sample``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from distillseg.oneshot.augmenter import RegistrationAugmenter


@dataclass(frozen=True)
class SynthesisOptions:
    mix_beta: float = 0.3              # Beta(β, β) of the mixing weight; 0 disables mixing (λ = 1)
    appearance_probability: float = 0.5
    affine_degrees: float = 5.0
    affine_scale: float = 0.05
    affine_shift_voxels: float = 3.0
    gamma: float = 0.3                 # log-gamma drawn from U(-gamma, gamma)
    noise: float = 0.03                # noise sd drawn from U(0, noise)
    patch: tuple[int, int, int] | None = None


@dataclass
class SyntheticPair:
    image: torch.Tensor          # student input (1, 1, P, Q, R)
    classes: torch.Tensor        # its labels (1, 1, P, Q, R) int64
    teacher_image: torch.Tensor  # the real image the teacher reconstructs (1, 1, P, Q, R)
    prior: torch.Tensor | None = None  # the atlas prior under the patch (1, C, P, Q, R)
    info: dict = field(default_factory=dict)


def _uniform(generator: torch.Generator, low: float, high: float, size=()) -> torch.Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def _rotation(angles: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=angles.dtype)
    skew = torch.stack([torch.stack([zero, -angles[2], angles[1]]),
                        torch.stack([angles[2], zero, -angles[0]]),
                        torch.stack([-angles[1], angles[0], zero])])
    return torch.linalg.matrix_exp(skew)


def _normalise(index: torch.Tensor, shape) -> torch.Tensor:
    """(…, 3) voxel indices (i, j, k) -> grid_sample coordinates (…, 3) in (k, j, i) order, align_corners=True."""
    scale = torch.tensor([2.0 / (s - 1) for s in shape], dtype=index.dtype, device=index.device)
    return (index * scale - 1.0).flip(-1)


class SyntheticPairSampler:
    """Draws (synthetic image, its labels, real teacher image) triples from the frozen augmenter."""

    def __init__(self, augmenter: RegistrationAugmenter, atlas_image: torch.Tensor, atlas_classes: torch.Tensor,
                 num_classes: int, targets: list[torch.Tensor], options: SynthesisOptions = SynthesisOptions(),
                 velocities: list[torch.Tensor] | None = None, prior: torch.Tensor | None = None):
        """``atlas_image`` (1, 1, I, J, K), ``atlas_classes`` (1, 1, I, J, K) int64, ``targets`` [(1, 1, I, J, K)];
        ``velocities``: atlas -> target fields (e.g. refined by instance optimisation), else the augmenter's;
        ``prior``: the atlas prior (1, C, I, J, K) to crop with every sample, or None."""
        self.options = options
        self.prior = prior
        self.shape = tuple(atlas_image.shape[2:])
        self.atlas = atlas_image
        self.onehot = F.one_hot(atlas_classes[0, 0], num_classes).permute(3, 0, 1, 2)[None].float()
        self.targets = targets
        self.augmenter = augmenter
        with torch.no_grad():
            self.velocities = velocities or [augmenter.velocity(atlas_image, y).float() for y in targets]
            # Appearance residuals in atlas space: y_i pulled back by the inverse deformation, minus the atlas.
            self.residuals = [augmenter.warp(y, augmenter.displacement(v, self.shape, scale=-1.0)) - atlas_image
                              for y, v in zip(targets, self.velocities)]

    def _mixed(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
        """Mixed velocity, mixed appearance residual and the dominant real image."""
        count = len(self.targets)
        i = int(torch.randint(count, (), generator=generator))
        partner = int(torch.randint(count, (), generator=generator))  # == count -> the atlas (v = 0)
        partner = count if partner == i else partner
        if self.options.mix_beta > 0:
            from scipy.special import betaincinv

            # torch's Beta sampler takes no generator: draw by inverse transform of a generator uniform.
            u = float(torch.rand((), generator=generator, dtype=torch.float64))
            weight = float(betaincinv(self.options.mix_beta, self.options.mix_beta, u))
        else:
            weight = 1.0
        zero = torch.zeros_like(self.velocities[i])
        v_j = self.velocities[partner] if partner < count else zero
        r_j = self.residuals[partner] if partner < count else torch.zeros_like(self.residuals[i])
        velocity = weight * self.velocities[i] + (1 - weight) * v_j
        residual = weight * self.residuals[i] + (1 - weight) * r_j
        dominant = self.targets[i] if weight >= 0.5 else (self.targets[partner] if partner < count else self.atlas)
        return velocity, residual, dominant, {"target": i, "partner": partner, "weight": weight}

    def _patch_index(self, generator: torch.Generator) -> tuple[torch.Tensor, list[int]]:
        """(P, Q, R, 3) working-grid voxel indices of a random patch, moved by a random affine about its centre, and
        the patch's unmoved first voxel."""
        patch = self.options.patch or self.shape
        patch = [min(p, s) for p, s in zip(patch, self.shape)]
        start = [int(torch.randint(s - p + 1, (), generator=generator)) for p, s in zip(patch, self.shape)]
        axes = [torch.arange(a, a + p, dtype=torch.float64) for a, p in zip(start, patch)]
        index = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)
        o = self.options
        angles = _uniform(generator, -1, 1, (3,)) * math.radians(o.affine_degrees)
        scales = torch.exp(_uniform(generator, -1, 1, (3,)) * o.affine_scale)
        shift = _uniform(generator, -1, 1, (3,)) * o.affine_shift_voxels
        linear = _rotation(angles) @ torch.diag(scales)
        centre = torch.tensor([a + (p - 1) / 2 for a, p in zip(start, patch)], dtype=torch.float64)
        return ((index - centre) @ linear.T + centre + shift).float(), start

    @torch.no_grad()
    def sample(self, generator: torch.Generator) -> SyntheticPair:
        velocity, residual, dominant, info = self._mixed(generator)
        use_appearance = bool(torch.rand((), generator=generator) < self.options.appearance_probability)
        index, start = self._patch_index(generator)
        index = index.to(self.atlas.device)
        affine_grid = _normalise(index, self.shape)[None]
        displacement = self.augmenter.displacement(velocity, self.shape)
        # Deformation evaluated at the affinely moved points, then the atlas sampled at point + displacement.
        moved = F.grid_sample(displacement, affine_grid, align_corners=True)[0].permute(1, 2, 3, 0)
        source_grid = _normalise(index + moved, self.shape)[None]
        atlas_image = (self.atlas + residual).clamp(0, 1) if use_appearance else self.atlas
        image = F.grid_sample(atlas_image, source_grid, align_corners=True, padding_mode="border")
        classes = F.grid_sample(self.onehot, source_grid, align_corners=True, padding_mode="border").argmax(
            1, keepdim=True)
        teacher = F.grid_sample(dominant, affine_grid, align_corners=True, padding_mode="border")
        o = self.options
        gamma = float(torch.exp(_uniform(generator, -o.gamma, o.gamma)))
        noise_sd = float(_uniform(generator, 0.0, o.noise))
        noise = torch.randn(image.shape, generator=generator).to(image.device) * noise_sd
        image = (image.clamp(0, 1) ** gamma + noise).clamp(0, 1)
        info.update(appearance=use_appearance, gamma=gamma)
        prior = None
        if self.prior is not None:
            size = image.shape[2:]
            prior = self.prior[:, :, start[0]:start[0] + size[0], start[1]:start[1] + size[1],
                               start[2]:start[2] + size[2]]
        return SyntheticPair(image=image, classes=classes, teacher_image=teacher, prior=prior, info=info)

    def sample_batch(self, generators: list[torch.Generator]) -> SyntheticPair:
        """One sample per generator, concatenated along the batch axis (the patch size must be fixed)."""
        pairs = [self.sample(g) for g in generators]
        return SyntheticPair(image=torch.cat([p.image for p in pairs]), classes=torch.cat([p.classes for p in pairs]),
                             teacher_image=torch.cat([p.teacher_image for p in pairs]),
                             prior=None if self.prior is None else torch.cat([p.prior for p in pairs]),
                             info={"samples": [p.info for p in pairs]})
