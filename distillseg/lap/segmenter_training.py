"""Training the segmenter: the base step (or the joint upper bound) and an incremental step under a strategy.

One iteration takes a batch of real frames (and, with replay, half as many synthetic frames), runs the current model
(and the frozen previous model), and adds up the strategy's losses:

    real frames:      CE (plain, MiB-unbiased, or on PLOP pseudo-labels; class-weighted with class_balance)
                      + dice_weight · new-class soft Dice
    replayed frames:  CE on the previous model's pseudo-labels (background = background ∪ new)
    both:             kd_weight · unbiased distillation + pod_weight · local POD + contrastive_weight · pixel InfoNCE

Shapes: frames uint8 (N, 3, H, W), labels uint8 (N, H, W) with 255 = no label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from distillseg.common.device import autocast, grad_scaler
from distillseg.common.distributed import World, all_reduce_mean, wrap_ddp
from distillseg.lap.contrastive import MemoryBank, ProjectionHead, pixel_info_nce, sample_pixels
from distillseg.lap.mib_losses import (IGNORE, new_class_dice, pseudo_label_cross_entropy,
                                               unbiased_cross_entropy, unbiased_distillation)
from distillseg.lap.plop_thresholds import normalised_entropy
from distillseg.lap.pod_loss import pod_distillation
from distillseg.lap.sampling import BatchPlan, augment, iteration_generator, poly_lr
from distillseg.lap.segmenter import Segmenter
from distillseg.lap.strategies import Strategy

PIXELS_PER_CLASS = 64   # contrastive anchors drawn per class and batch
BANK_SIZE = 512         # memory-bank embeddings kept per class


@dataclass
class LoopOptions:
    iterations: int
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_every: int = 50
    freeze_batchnorm: bool = False  # incremental steps keep the BN statistics the old structures were learned with
    dice_weight: float = 0.0        # base step / joint: soft Dice of every structure (steps take the strategy's)
    zoom: float = 1.0               # smallest window side fraction of the zoom augmentation (1 = none)
    crop: tuple[int, int] | None = None  # training windows (h, w) taken from the working grid (None = whole frames)
    focus: float = 0.0              # share of the windows centred on a labelled structure (sampling.augment)
    class_balance: float = 0.0      # cross-entropy class weights ∝ frequency^-class_balance on the real frames
                                    # (lap train's default 0.5, lap learn's 1; a step's: ``step_class_weights``)


@dataclass
class StepInputs:
    """What an incremental step has besides its real frames."""

    strategy: Strategy
    old: Segmenter
    old_outputs: int
    replay_images: torch.Tensor | None = None   # uint8 (M, 3, H, W)
    replay_labels: torch.Tensor | None = None   # uint8 (M, H, W), old values or 255
    thresholds: torch.Tensor | None = None      # (K_old,) PLOP's per-class entropy thresholds, if the strategy uses them


def _pod_layers(out) -> list[torch.Tensor]:
    """Features PLOP's POD constrains: encoder strides 8..32 and the first three decoder blocks."""
    return list(out.encoder[2:]) + list(out.decoder[:3])


def _old_model_labels(targets: torch.Tensor, old_logits: torch.Tensor, confidence: float,
                      ignore_uncertain: bool, thresholds: torch.Tensor | None = None) -> torch.Tensor:
    """Background pixels of ``targets`` relabelled with the previous model's sure old-structure prediction;
    uncertain ones become IGNORE when ``ignore_uncertain`` (PLOP), else stay background. Sure = softmax >=
    ``confidence``, or with ``thresholds`` (K_old,) PLOP's rule: normalised entropy below the predicted class's."""
    probs = torch.softmax(old_logits.float(), dim=1)
    conf, predicted = probs.max(dim=1)
    out = targets.long().clone()
    background = out == 0
    if thresholds is None:
        sure = conf >= confidence
    else:
        sure = normalised_entropy(old_logits) < thresholds.to(predicted.device)[predicted]
    out[background & sure & (predicted > 0)] = predicted[background & sure & (predicted > 0)]
    if ignore_uncertain:
        out[background & ~sure] = IGNORE
    return out


def class_balance_weights(labels: torch.Tensor, classes: int, power: float) -> torch.Tensor:
    """Cross-entropy weights (classes,) ∝ f_c^-power, with f_c the share of labelled pixels of class c in ``labels``
    (uint8 (N, H, W), IGNORE left out), scaled so that the mean weight over the labelled pixels is 1. A class with no
    pixel counts as one pixel (it never meets the loss anyway).

    Why: on real frames the cystic artery and the Calot triangle cover 0.3-1.4 % of the pixels; with plain
    cross-entropy a few hundred iterations end before they win a pixel. ``power`` 1 is inverse-frequency weighting,
    0.5 its square root (gentler on background), 0 plain cross-entropy."""
    valid = labels[labels != IGNORE].long()
    counts = torch.bincount(valid, minlength=classes)[:classes].double()
    total = max(valid.numel(), 1)
    weights = (counts.clamp(min=1) / total).pow(-power)
    return (weights / max(float((counts / total * weights).sum()), 1e-12)).float()


def step_class_weights(labels: torch.Tensor, outputs: int, old_outputs: int, power: float) -> torch.Tensor:
    """``class_balance_weights`` for a learning step's real frames, whose labels hold only background and the new
    classes: the old structures (values 1..old_outputs-1, absent from these labels but present in the targets as
    pseudo-labels, or merged into background by MiB's unbiased cross-entropy) take the background's weight, as
    they are part of what these frames label background. With ``old_outputs`` 1 (no old structures) it is
    ``class_balance_weights``."""
    weights = class_balance_weights(labels, outputs, power)
    weights[1:old_outputs] = weights[0]
    return weights


def _downsample_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()


class SegmenterTrainer:
    """Runs ``LoopOptions.iterations`` iterations on one rank; ``state`` is a ``JobState`` for checkpoints."""

    def __init__(self, model: Segmenter, images: torch.Tensor, labels: torch.Tensor, options: LoopOptions,
                 device: torch.device, amp_dtype, world: World, step: StepInputs | None = None):
        self.model, self.images, self.labels, self.options = model.to(device), images, labels, options
        self.device, self.amp_dtype, self.world, self.step = device, amp_dtype, world, step
        self.projection = None
        if step is not None and step.strategy.contrastive_weight:
            self.projection = ProjectionHead(model.config.embedding_channels).to(device)
        self.bank = MemoryBank(BANK_SIZE)
        params = list(model.parameters()) + (list(self.projection.parameters()) if self.projection else [])
        self.optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
        self.scaler = grad_scaler(device, amp_dtype)
        self.plan = BatchPlan(len(images), options.batch_size, world, options.seed)
        # The base step and joint have no old structures (old_outputs 1): their weights are class_balance_weights'.
        self.ce_weights = step_class_weights(labels, model.num_outputs, step.old_outputs if step else 1,
                                             options.class_balance).to(device) if options.class_balance else None
        self.replay_plan = None
        if step is not None and step.replay_images is not None and len(step.replay_images):
            # Half as many replayed as real frames per batch: they carry the old structures, the real ones the new.
            self.replay_plan = BatchPlan(len(step.replay_images), max(1, options.batch_size // 2), world,
                                         options.seed + 1)
        self.ddp_model = wrap_ddp(self.model, device, world)
        self.ddp_projection = wrap_ddp(self.projection, device, world) if self.projection else None
        if step is not None:
            step.old.to(device).eval().requires_grad_(False)

    # -------------------------------------------------------------------------------------------------- one step
    def _batch(self, iteration: int):
        generator = iteration_generator(self.options.seed, "segmenter", iteration, self.world.rank)
        index = self.plan.indices(iteration)
        x, y = augment(self.images[index], self.labels[index], generator, self.options.zoom, self.options.crop,
                       self.options.focus)
        real = len(index)
        if self.replay_plan is not None:
            replay_index = self.replay_plan.indices(iteration)
            xs, ys = augment(self.step.replay_images[replay_index], self.step.replay_labels[replay_index], generator,
                             self.options.zoom, self.options.crop, self.options.focus)
            x, y = torch.cat([x, xs]), torch.cat([y, ys])
        return x.to(self.device), y.to(self.device).long(), real

    def loss(self, iteration: int) -> tuple[torch.Tensor, dict[str, float]]:
        self._iteration = iteration
        x, y, real = self._batch(iteration)
        step = self.step
        with autocast(self.device, self.amp_dtype):
            need_features = step is not None and bool(step.strategy.pod_weight or step.strategy.contrastive_weight)
            out = self.ddp_model(x, features=need_features)
            if step is None:
                return self._base_loss(out.logits, y)
            old = None
            if step.strategy.uses_old_model:
                with torch.no_grad():
                    old = step.old(x, features=bool(step.strategy.pod_weight))
        return self._step_loss(out, old, y, real)

    def _base_loss(self, logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Step 0 / joint: cross-entropy (class-weighted with ``class_balance``) + ``dice_weight`` · soft Dice of
        every structure (nnU-Net's Dice + CE), so a structure covering 0.3 % of the pixels weighs as much in the Dice
        term as one covering 17 %."""
        terms = {"ce": F.cross_entropy(logits.float(), y, weight=self.ce_weights, ignore_index=IGNORE)}
        if self.options.dice_weight:
            terms["dice"] = self.options.dice_weight * new_class_dice(logits, y, old_outputs=1)
        return sum(terms.values()), {k: float(v.detach()) for k, v in terms.items()}

    def _step_loss(self, out, old, y, real: int) -> tuple[torch.Tensor, dict[str, float]]:
        strategy, old_outputs = self.step.strategy, self.step.old_outputs
        logits, old_logits = out.logits, (old.logits if old is not None else None)
        terms: dict[str, torch.Tensor] = {}
        if strategy.pseudo_labels:
            targets = _old_model_labels(y[:real], old_logits[:real], strategy.confidence, ignore_uncertain=True,
                                        thresholds=self.step.thresholds)
            terms["ce"] = F.cross_entropy(logits[:real].float(), targets, weight=self.ce_weights, ignore_index=IGNORE)
        elif strategy.unbiased_ce:
            terms["ce"] = unbiased_cross_entropy(logits[:real], y[:real], old_outputs, weight=self.ce_weights)
        else:
            terms["ce"] = F.cross_entropy(logits[:real].float(), y[:real], weight=self.ce_weights,
                                          ignore_index=IGNORE)
        if strategy.dice_weight:
            terms["dice"] = strategy.dice_weight * new_class_dice(logits[:real], y[:real], old_outputs)
        if real < len(y):
            terms["replay_ce"] = pseudo_label_cross_entropy(logits[real:], y[real:], old_outputs)
        if strategy.kd_weight:
            terms["kd"] = strategy.kd_weight * unbiased_distillation(logits, old_logits)
        if strategy.pod_weight:
            terms["pod"] = strategy.pod_weight * pod_distillation(_pod_layers(out), _pod_layers(old))
        if strategy.contrastive_weight:
            with autocast(self.device, self.amp_dtype):
                embeddings = self.ddp_projection(out.decoder[self.model.config.embedding_level])
            labels = torch.cat([_old_model_labels(y[:real], old_logits[:real], strategy.confidence, True,
                                                  self.step.thresholds), y[real:]])
            labels = _downsample_labels(labels, tuple(embeddings.shape[-2:]))
            generator = iteration_generator(self.options.seed, "contrast", self._iteration, self.world.rank)
            anchors, anchor_labels = sample_pixels(embeddings, labels, PIXELS_PER_CLASS, generator)
            terms["contrast"] = strategy.contrastive_weight * pixel_info_nce(
                anchors, anchor_labels, self.bank.contents(), strategy.temperature)
            self.bank.push(anchors, anchor_labels)
        total = sum(terms.values())
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def train_mode(self) -> None:
        self.model.train()
        if self.options.freeze_batchnorm:
            for module in self.model.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()
        if self.projection is not None:
            self.projection.train()

    def run(self, state, stage_name: str, progress_stage) -> dict[str, float]:
        """Train from the checkpointed iteration to the end; returns the last logged loss terms."""
        start = state.iteration(stage_name)
        if start:
            self.model.load_state_dict(state.group("segmenter"))
            if self.projection is not None and state.group("projection"):
                self.projection.load_state_dict(state.group("projection"))
            state.restore_optimizer("segmenter", self.optimizer)
        self.train_mode()
        terms, started = {}, time.monotonic()
        for iteration in range(start, self.options.iterations):
            for group in self.optimizer.param_groups:
                group["lr"] = poly_lr(self.options.lr, iteration, self.options.iterations)
            loss, terms = self.loss(iteration)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            shown = float(all_reduce_mean(loss.detach(), self.world))
            progress_stage.update(iteration + 1, loss=shown, **terms)
            done = iteration + 1 == self.options.iterations
            if (iteration + 1) % self.options.checkpoint_every == 0 or done:
                state.record(stage_name, iteration + 1, done=done, groups=self.weights(),
                             optimizers={"segmenter": self.optimizer})
        terms["seconds"] = time.monotonic() - started
        return terms

    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        groups = {"segmenter": self.model.state_dict()}
        if self.projection is not None:
            groups["projection"] = self.projection.state_dict()
        return groups
