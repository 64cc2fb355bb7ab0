"""PLOP's pooled output distillation, "local POD" (Douillard et al., "PLOP: Learning without Forgetting for
Continual Semantic Segmentation", CVPR 2021).

Each feature map (B, C, H, W) is squared and, on a spatial pyramid (the whole map, then 2×2, then 4×4 cells),
pooled along the width and along the height; the pooled vectors are L2-normalised per cell and concatenated. The
loss is the L2 distance between the old and new model's embeddings, averaged over the batch and over layers. It
constrains *where* features are active (statistics of rows and columns) without freezing the features themselves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PYRAMID = (1, 2, 4)


def local_pod_embedding(features: torch.Tensor, scales: tuple[int, ...] = PYRAMID) -> torch.Tensor:
    """(B, C, H, W) -> (B, D): width- and height-pooled statistics of every pyramid cell, each L2-normalised."""
    x = features.float().pow(2)
    batch, _, height, width = x.shape
    parts = []
    for scale in scales:
        rows = [round(i * height / scale) for i in range(scale + 1)]
        cols = [round(j * width / scale) for j in range(scale + 1)]
        for i in range(scale):
            for j in range(scale):
                cell = x[..., rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
                if cell.numel() == 0:
                    continue
                parts.append(F.normalize(cell.mean(dim=3).reshape(batch, -1), dim=1))  # pooled over width
                parts.append(F.normalize(cell.mean(dim=2).reshape(batch, -1), dim=1))  # pooled over height
    return torch.cat(parts, dim=1)


def pod_distillation(new_features: list[torch.Tensor], old_features: list[torch.Tensor],
                     scales: tuple[int, ...] = PYRAMID) -> torch.Tensor:
    """Mean over layers of the batch-mean L2 distance between local POD embeddings (old side detached)."""
    if len(new_features) != len(old_features) or not new_features:
        raise ValueError("POD needs the same, non-empty list of layers from both models")
    losses = []
    for new, old in zip(new_features, old_features):
        difference = local_pod_embedding(new, scales) - local_pod_embedding(old.detach(), scales)
        losses.append(difference.norm(dim=1).mean())
    return torch.stack(losses).mean()
