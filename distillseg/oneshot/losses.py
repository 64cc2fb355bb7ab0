"""Losses of the one-shot method that MONAI does not have as such, and the registration loss assembled from MONAI's.

- ``hint_loss``: Σ over feature levels of (1 - cos(flatten(F_teacher), flatten(F_student))), averaged over the batch.
  Gradients reach the student; the teacher side is detached unless ``train_teacher=True`` (the public code of the
  paper detaches both sides, which silently switches the hint off).
- ``reconstruction_loss``: L1 (default) or MSE between the teacher's reconstruction and its input.
- ``RegistrationLoss``: MONAI LNCC (window 9) or MSE similarity + λ·MONAI ``DiffusionLoss`` (squared gradient of the
  velocity field) + weight·MONAI ``ContrastiveLoss`` (NT-Xent, τ = 0.5) between embeddings of warped moving and
  fixed images, the positives being each pair and the negatives the rest of the batch.
The segmentation loss is MONAI ``DiceCELoss`` as is (see ``segmentation_loss``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def hint_loss(teacher_features: Sequence[torch.Tensor], student_features: Sequence[torch.Tensor],
              train_teacher: bool = False) -> torch.Tensor:
    """Σ_levels mean_batch (1 - cos(flatten(T), flatten(S))); each pair of features has the same shape (B, C, ...)."""
    total = student_features[0].new_zeros((), dtype=torch.float32)
    for teacher, student in zip(teacher_features, student_features, strict=True):
        if teacher.shape != student.shape:
            raise ValueError(f"hint features differ in shape: teacher {tuple(teacher.shape)}, "
                             f"student {tuple(student.shape)}")
        teacher = teacher if train_teacher else teacher.detach()
        cosine = F.cosine_similarity(teacher.flatten(1).float(), student.flatten(1).float(), dim=1, eps=1e-8)
        total = total + (1.0 - cosine).mean()
    return total


def reconstruction_loss(reconstruction: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``mse``) error, both (B, 1, ...)."""
    if kind == "l1":
        return F.l1_loss(reconstruction.float(), target.float())
    if kind == "mse":
        return F.mse_loss(reconstruction.float(), target.float())
    raise ValueError(f"reconstruction loss must be 'l1' or 'mse', not {kind!r}")


def segmentation_loss() -> nn.Module:
    """MONAI Dice + cross-entropy on logits (B, C, ...) against class indices (B, 1, ...)."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True)


class RegistrationLoss(nn.Module):
    """Similarity(warped, fixed) + smooth_weight·smoothness(velocity) + contrastive_weight·NT-Xent(embeddings).

    Returns the total and its parts (for progress metrics).
    """

    def __init__(self, similarity: str = "lncc", window: int = 9, smooth_weight: float = 1.0,
                 contrastive_weight: float = 0.01, temperature: float = 0.5):
        super().__init__()
        from monai.losses import ContrastiveLoss, DiffusionLoss, LocalNormalizedCrossCorrelationLoss

        if similarity == "lncc":
            self.similarity = LocalNormalizedCrossCorrelationLoss(spatial_dims=3, kernel_size=window)
        elif similarity == "mse":
            self.similarity = nn.MSELoss()
        else:
            raise ValueError(f"similarity must be 'lncc' or 'mse', not {similarity!r}")
        self.smoothness = DiffusionLoss()
        self.contrastive = ContrastiveLoss(temperature=temperature)
        self.smooth_weight, self.contrastive_weight = smooth_weight, contrastive_weight

    def forward(self, warped: torch.Tensor, fixed: torch.Tensor, velocity: torch.Tensor,
                warped_embedding: torch.Tensor | None = None, fixed_embedding: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, dict[str, float]]:
        similarity = self.similarity(warped.float(), fixed.float())
        smoothness = self.smoothness(velocity.float())
        total = similarity + self.smooth_weight * smoothness
        parts = {"similarity": float(similarity.detach()), "smoothness": float(smoothness.detach())}
        if self.contrastive_weight and warped_embedding is not None and warped_embedding.shape[0] > 1:
            contrastive = self.contrastive(warped_embedding, fixed_embedding)
            total = total + self.contrastive_weight * contrastive
            parts["contrastive"] = float(contrastive.detach())
        return total, parts
