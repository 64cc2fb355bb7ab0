"""MiB's unbiased losses for background shift (Cermelli et al., "Modeling the Background for Incremental Learning
in Semantic Segmentation", CVPR 2020).

In step t the new frames are annotated only for the new classes, so the old structures are labelled background.
*Unbiased cross-entropy*: a background pixel may be background or any old class, so its probability is
P(bg) + Σ P(old). *Unbiased distillation*: the old model's background may be background or any new class, so it is
matched against P_new(bg) + Σ P_new(new classes).

Shapes: logits (B, K, H, W) of the current model (K = 1 + old + new structures), old logits (B, K_old, H, W),
targets (B, H, W) integer with ``ignore_index`` for pixels without a label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = 255


def unbiased_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, old_outputs: int,
                           ignore_index: int = IGNORE, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over labelled pixels of -log P(target), where background means background ∪ old classes.

    ``old_outputs``: outputs of the previous model (1 + old structures). Targets of old classes are treated as
    background (they are what the old model knows), targets >= ``old_outputs`` are new classes. ``weight``
    (K,) per-output class weights as ``F.cross_entropy``'s (the merged background takes the background's);
    the mean is then weighted, as there.
    """
    logits = logits.float()
    denominator = torch.logsumexp(logits, dim=1)
    log_probs = torch.empty_like(logits[:, : logits.shape[1] - old_outputs + 1])
    log_probs[:, 0] = torch.logsumexp(logits[:, :old_outputs], dim=1) - denominator
    log_probs[:, 1:] = logits[:, old_outputs:] - denominator.unsqueeze(1)
    labels = targets.long().clone()
    labelled = labels != ignore_index
    labels[labelled & (labels < old_outputs)] = 0
    labels[labelled & (labels >= old_outputs)] -= old_outputs - 1
    if weight is not None:
        weight = torch.cat([weight[:1], weight[old_outputs:]]).to(log_probs)
    return F.nll_loss(log_probs, labels, weight=weight, ignore_index=ignore_index)


def unbiased_distillation(logits: torch.Tensor, old_logits: torch.Tensor, mask: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """Cross-entropy between the old model's softmax and the new model's probabilities of the old outputs, with
    the new model's background taken as background ∪ new classes; averaged over the old outputs (as MiB).

    ``mask`` (B, H, W) bool limits the mean to some pixels (default all).
    """
    logits = logits.float()
    old_outputs = old_logits.shape[1]
    denominator = torch.logsumexp(logits, dim=1)
    background = torch.cat([logits[:, :1], logits[:, old_outputs:]], dim=1)
    log_bg = torch.logsumexp(background, dim=1) - denominator
    log_old = logits[:, 1:old_outputs] - denominator.unsqueeze(1)
    teacher = torch.softmax(old_logits.float(), dim=1)
    per_pixel = (teacher[:, 0] * log_bg + (teacher[:, 1:] * log_old).sum(dim=1)) / old_outputs
    if mask is not None:
        if not mask.any():
            return logits.sum() * 0
        return -per_pixel[mask].mean()
    return -per_pixel.mean()


def pseudo_label_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, old_outputs: int,
                               ignore_index: int = IGNORE) -> torch.Tensor:
    """Cross-entropy against the previous model's pseudo-labels (replayed frames): a pixel the old model called
    background may be background or a new class (the old model never knew the new ones), so its probability is
    P(bg) + Σ P(new); a pixel it called an old structure keeps that structure's probability.

    ``targets`` hold values < ``old_outputs`` or ``ignore_index``.
    """
    log_probs = torch.log_softmax(logits.float(), dim=1)
    background = torch.logsumexp(torch.cat([log_probs[:, :1], log_probs[:, old_outputs:]], dim=1), dim=1)
    merged = torch.cat([background.unsqueeze(1), log_probs[:, 1:old_outputs]], dim=1)
    return F.nll_loss(merged, targets.long(), ignore_index=ignore_index)


def new_class_dice(logits: torch.Tensor, targets: torch.Tensor, old_outputs: int,
                   ignore_index: int = IGNORE) -> torch.Tensor:
    """Soft Dice loss (MONAI ``MaskedDiceLoss``, pooled over the batch) of the new classes on frames annotated for
    them: 1 - mean over new classes of 2|P ∩ Y| / (|P| + |Y|), with P the softmax probability of the class.

    Why: a new structure can be small (vesicular glands cover about 3 % of a frame). Cross-entropy is dominated by
    the other 97 % and a short incremental step then ends before the class ever wins a pixel; Dice weighs each new
    class by its own size. Only new classes: old classes are absent from (background in) these frames' labels.
    ``targets`` >= ``old_outputs`` are new classes; ``ignore_index`` pixels are left out. With ``old_outputs`` = 1
    (the base step, the joint model) every structure is "new".
    """
    from monai.losses import MaskedDiceLoss

    new = logits.shape[1] - old_outputs
    probs = torch.softmax(logits.float(), dim=1)[:, old_outputs:]
    labels = targets.long()
    labelled = (labels != ignore_index).unsqueeze(1)
    onehot = torch.stack([labels == old_outputs + c for c in range(new)], dim=1).float()
    return MaskedDiceLoss(batch=True, smooth_nr=1e-5, smooth_dr=1e-5)(probs, onehot, mask=labelled)
