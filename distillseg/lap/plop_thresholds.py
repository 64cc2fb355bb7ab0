"""PLOP's pseudo-label rule (Douillard et al., "PLOP: Learning without Forgetting for Continual Semantic
Segmentation", CVPR 2021, §3.2): a background pixel of a new frame takes the previous model's old-structure
prediction c when the prediction's normalised entropy is below τ_c, the median entropy of all pixels the previous
model assigns to c over the step's frames. Per class, because a small structure's predictions are less certain
than the background's; a single softmax threshold keeps almost none of them.

Shapes: logits (B, K, H, W), frames uint8 (N, 3, H, W); entropies are normalised by log K (0 = certain, 1 = uniform).
"""

from __future__ import annotations

import math

import torch

from distillseg.common.device import autocast
from distillseg.lap.segmenter import Segmenter, frames_to_float


def normalised_entropy(logits: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) logits -> (B, H, W) entropy of their softmax divided by log K."""
    log_probs = torch.log_softmax(logits.float(), dim=1)
    return -(log_probs.exp() * log_probs).sum(dim=1) / math.log(logits.shape[1])


@torch.no_grad()
def median_entropy_thresholds(old: Segmenter, images: torch.Tensor, device: torch.device, amp_dtype=None,
                              batch_size: int = 16) -> torch.Tensor:
    """τ (K_old,) float: per old output c, the median normalised entropy of the pixels ``old`` predicts as c on
    ``images``; 1.0 (accept all) for an output it never predicts there."""
    old.eval()
    entropies, predictions = [], []
    for start in range(0, len(images), batch_size):
        with autocast(device, amp_dtype):
            logits = old(frames_to_float(images[start:start + batch_size]).to(device)).logits.float()
        entropies.append(normalised_entropy(logits).flatten().cpu())
        predictions.append(logits.argmax(dim=1).flatten().cpu())
    entropy, predicted = torch.cat(entropies), torch.cat(predictions)
    thresholds = torch.ones(old.num_outputs)
    for value in range(old.num_outputs):
        chosen = entropy[predicted == value]
        if len(chosen):
            thresholds[value] = chosen.median()
    return thresholds
