"""The ways a new step can be learned, as switches and weights of one training loop (DESIGN §5).

- ``finetune``: plain cross-entropy on the new frames (old structures there are labelled background): lower bound.
- ``mib``: MiB's unbiased cross-entropy and unbiased output distillation from the frozen previous model.
- ``plop``: pseudo-labels of old structures from the previous model (PLOP's rule: entropy below the class's median
  entropy on the step's frames; uncertain background pixels ignored) plus PLOP's pooled feature distillation.
- ``ours``: on the real frames, cross-entropy on the new labels plus the previous model's confident old structures
  (pseudo-labels; ``--no-pseudo-labels`` falls back to MiB's unbiased cross-entropy, DESIGN's first choice, which
  lets old structures spread over the background unpunished: on synthetic scenes of another seed than the
  benchmark's it lost 12.1 points of old-structure IoU in the first step, pseudo-labels 1.3 —
  ``benchmarks/lap_validation.py``); MiB unbiased output distillation + pooled feature distillation on real *and*
  diffusion-replayed frames (pseudo-labelled by the previous model) + cross-image pixel contrastive loss + soft Dice
  of the new classes (small new structures).
- ``joint``: every frame with every label, trained offline (``lap train`` on all data): upper bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Strategy:
    name: str
    unbiased_ce: bool = False         # MiB unbiased cross-entropy on real frames
    kd_weight: float = 0.0            # MiB unbiased output distillation
    pod_weight: float = 0.0           # PLOP local POD on encoder/decoder features
    pseudo_labels: bool = False       # PLOP: old structures' pseudo-labels on the real frames (before unbiased_ce)
    replay: bool = False              # diffusion replay frames, pseudo-labelled by the previous model
    contrastive_weight: float = 0.0   # cross-image pixel InfoNCE
    dice_weight: float = 0.0          # soft Dice of the new classes on the real frames
    temperature: float = 0.1
    confidence: float = 0.7           # pseudo-label threshold on the previous model's softmax
    entropy_thresholds: bool = False  # PLOP: per-class median-entropy thresholds instead of ``confidence``

    @property
    def uses_old_model(self) -> bool:
        return bool(self.kd_weight or self.pod_weight or self.pseudo_labels or self.replay or self.contrastive_weight)

    def to_json(self) -> dict:
        return asdict(self)


STRATEGIES = {
    "finetune": Strategy("finetune"),
    "mib": Strategy("mib", unbiased_ce=True, kd_weight=10.0),
    "plop": Strategy("plop", pod_weight=0.01, pseudo_labels=True, entropy_thresholds=True),
    "ours": Strategy("ours", unbiased_ce=True, kd_weight=10.0, pod_weight=0.01, pseudo_labels=True, replay=True,
                     contrastive_weight=0.1, dice_weight=1.0),
}


def strategy_named(name: str, **overrides) -> Strategy:
    """The strategy with some weights changed (None values leave the default)."""
    from distillseg.contract.errors import UserError

    if name not in STRATEGIES:
        raise UserError(f"Unknown strategy '{name}'; use one of {', '.join(STRATEGIES)} "
                        "(joint = 'lap train' on all data with all structures).")
    changes = {k: v for k, v in overrides.items() if v is not None}
    return replace(STRATEGIES[name], **changes)
