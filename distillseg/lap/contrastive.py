"""Cross-image pixel contrastive learning: a projection head, a per-class memory bank and a pixel InfoNCE loss
(as in Wang et al., "Exploring Cross-Image Pixel Contrast for Semantic Segmentation", ICCV 2021).

Pixel embeddings of the same structure are pulled together and those of different structures pushed apart, across
all frames of the batch (real and synthetic) and the embeddings of earlier batches kept in the memory bank, so a
structure's representation stays one cluster across patients and steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from distillseg.lap.mib_losses import IGNORE


class ProjectionHead(nn.Module):
    """(B, C, h, w) decoder features -> (B, D, h, w) unit-length pixel embeddings (1×1 conv, ReLU, 1×1 conv)."""

    def __init__(self, in_channels: int, dim: int = 256):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(in_channels, in_channels, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(in_channels, dim, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layers(features).float(), dim=1)


class MemoryBank:
    """The last ``size`` embeddings (detached) of every class, first in first out."""

    def __init__(self, size: int = 512):
        self.size = int(size)
        self.store: dict[int, torch.Tensor] = {}

    def push(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        """``embeddings`` (N, D), ``labels`` (N,)."""
        for value in labels.unique().tolist():
            new = embeddings[labels == value].detach()
            kept = self.store.get(value)
            merged = new if kept is None else torch.cat([new, kept])
            self.store[value] = merged[: self.size]

    def contents(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """All stored embeddings (M, D) and their labels (M,), or None when empty."""
        if not self.store:
            return None
        embeddings = torch.cat(list(self.store.values()))
        labels = torch.cat([torch.full((len(v),), k, dtype=torch.long, device=v.device)
                            for k, v in self.store.items()])
        return embeddings, labels


def sample_pixels(embeddings: torch.Tensor, labels: torch.Tensor, per_class: int,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``per_class`` random pixels of each class over all frames of the batch.

    ``embeddings`` (B, D, h, w), ``labels`` (B, h, w) with IGNORE for unlabelled pixels -> (N, D), (N,).
    """
    flat = embeddings.permute(0, 2, 3, 1).reshape(-1, embeddings.shape[1])
    flat_labels = labels.reshape(-1).long()
    chosen = []
    for value in flat_labels.unique().tolist():
        if value == IGNORE:
            continue
        where = torch.nonzero(flat_labels == value).flatten()
        order = torch.randperm(len(where), generator=generator, device="cpu").to(where.device)
        chosen.append(where[order[:per_class]])
    if not chosen:
        return flat[:0], flat_labels[:0]
    index = torch.cat(chosen)
    return flat[index], flat_labels[index]


def pixel_info_nce(anchors: torch.Tensor, labels: torch.Tensor, bank: tuple[torch.Tensor, torch.Tensor] | None = None,
                   temperature: float = 0.1) -> torch.Tensor:
    """Pixel InfoNCE: for anchor i and each positive p (same class, another batch pixel or a bank entry),
    -log(exp(i·p/τ) / (exp(i·p/τ) + Σ_negatives exp(i·n/τ))); averaged over positives, then over anchors that
    have at least one positive and one negative. ``anchors`` (N, D) unit vectors, ``labels`` (N,)."""
    keys, key_labels = anchors, labels
    if bank is not None:
        keys = torch.cat([anchors, bank[0].to(anchors.dtype)])
        key_labels = torch.cat([labels, bank[1].to(labels.device)])
    similarity = anchors @ keys.T / temperature                        # (N, N + M)
    positive = labels[:, None] == key_labels[None, :]
    positive[:, : len(anchors)].fill_diagonal_(False)                  # an anchor is not its own positive
    negative = labels[:, None] != key_labels[None, :]
    usable = positive.any(dim=1) & negative.any(dim=1)
    if not usable.any():
        return anchors.sum() * 0
    similarity, positive, negative = similarity[usable], positive[usable], negative[usable]
    # log Σ_neg exp(s_in), per anchor; -inf where masked out so it does not contribute.
    negatives = torch.logsumexp(similarity.masked_fill(~negative, float("-inf")), dim=1, keepdim=True)
    log_ratio = similarity - torch.logaddexp(similarity, negatives)   # log(e^s_ip / (e^s_ip + Σ e^s_in))
    per_anchor = -(log_ratio * positive).sum(dim=1) / positive.sum(dim=1)
    return per_anchor.mean()
