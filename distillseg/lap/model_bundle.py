"""IncrementalLap model bundles (method ``lap``): one folder per model version, written by ``save_bundle``.

Weights (safetensors):

- ``segmenter``             the current segmenter (head with 1 + all structures' outputs)
- ``segmenter_step<k>``     the segmenter as it was after every earlier step k (restorable versions)
- ``diffusion_step<k>``     the replay DDPM of step k's frames (no frame of any patient is stored)
- ``projection``            the contrastive projection head, carried to the next step (when a step trained one)

Manifest (besides ``save_bundle``'s own fields): ``network`` (segmenter config and outputs), ``labels`` (engine-wide
label table), ``classes`` (registry with the step that introduced each structure), ``preprocessing`` (working size,
border crop, normalisation), ``diffusion`` (config and steps that have a model), ``step``, ``history`` (one entry
per step: strategy, options, data summary, scores, time, device), ``versions`` and ``synthetic_training_data``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from distillseg.common.bundle import Bundle, load_bundle, save_bundle, state_shapes
from distillseg.contract.errors import file_error
from distillseg.contract.manifest import LAP, damaged_manifest
from distillseg.lap.classes import ClassRegistry
from distillseg.lap.contrastive import ProjectionHead
from distillseg.lap.diffusion import DiffusionConfig, build_diffusion_net
from distillseg.lap.segmenter import Segmenter, SegmenterConfig

PREPROCESSING = {"crop_black_border": True, "resize": "bilinear (antialiased) to the working size",
                 "intensity": "RGB / 255, then ImageNet mean and standard deviation"}


@dataclass
class LapModel:
    """A model version in memory; weights of earlier versions and diffusion models stay on disk until needed."""

    config: SegmenterConfig
    registry: ClassRegistry
    size: tuple[int, int]
    step: int
    segmenter: dict[str, torch.Tensor]
    diffusion_config: DiffusionConfig
    history: list[dict[str, Any]] = field(default_factory=list)
    synthetic_training_data: bool = False
    projection: dict[str, torch.Tensor] | None = None
    # step -> weights, loaded lazily from ``source`` when not given
    diffusion: dict[int, dict[str, torch.Tensor] | None] = field(default_factory=dict)
    earlier: dict[int, dict[str, torch.Tensor] | None] = field(default_factory=dict)
    source: Bundle | None = None

    def build(self, device: torch.device | str = "cpu", weights: dict[str, torch.Tensor] | None = None
              ) -> Segmenter:
        """The segmenter with this version's weights (or ``weights``), in eval mode."""
        state = weights if weights is not None else self.segmenter
        net = Segmenter(self.config, int(state["head.weight"].shape[0]))
        net.load_state_dict(state)
        return net.to(device).eval()

    def diffusion_weights(self, step: int) -> dict[str, torch.Tensor]:
        if self.diffusion.get(step) is None:
            shapes = state_shapes(lambda: build_diffusion_net(self.diffusion_config))
            self.diffusion[step] = self.source.load_weights(f"diffusion_step{step}", shapes=shapes)
        return self.diffusion[step]

    def earlier_weights(self, step: int) -> dict[str, torch.Tensor]:
        if self.earlier.get(step) is None:
            shapes = segmenter_shapes(self.config, 1 + sum(1 for e in self.registry.entries if e.step <= step))
            self.earlier[step] = self.source.load_weights(f"segmenter_step{step}", shapes=shapes)
        return self.earlier[step]


def segmenter_shapes(config: SegmenterConfig, outputs: int) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a segmenter with ``outputs`` head outputs (what its weight file must hold)."""
    return state_shapes(lambda: Segmenter(config, outputs))


def manifest_of(model: LapModel) -> dict[str, Any]:
    manifest = {
        "method": LAP,
        "title": "IncrementalLap model",
        "network": {"segmenter": model.config.to_json(), "outputs": model.registry.num_outputs},
        "labels": model.registry.labels_json(),
        "classes": model.registry.to_json(),
        "preprocessing": {**PREPROCESSING, "size": list(model.size)},
        "diffusion": {"config": model.diffusion_config.to_json(), "steps": sorted(model.diffusion)},
        "step": model.step,
        "history": model.history,
        "versions": [{"step": k, "weights": f"segmenter_step{k}"} for k in sorted(model.earlier)]
                    + [{"step": model.step, "weights": "segmenter"}],
        "synthetic_training_data": model.synthetic_training_data,
    }
    if model.synthetic_training_data:
        manifest["note"] = ("trained on SYNTHETIC frames made by 'distillseg lap demo-data', not on laparoscopic "
                            "images: for demonstration and testing only")
    return manifest


def save_lap_model(path: str | Path, model: LapModel) -> Path:
    """Write the bundle atomically with every earlier version and diffusion model it carries."""
    weights = {"segmenter": model.segmenter}
    for step in sorted(model.earlier):
        weights[f"segmenter_step{step}"] = model.earlier_weights(step)
    for step in sorted(model.diffusion):
        weights[f"diffusion_step{step}"] = model.diffusion_weights(step)
    if model.projection is not None:
        weights["projection"] = model.projection
    return save_bundle(path, manifest_of(model), weights)


def load_lap_model(path: str | Path) -> LapModel:
    """Read a ``lap`` bundle (refusing one of the other method) and its current segmenter weights."""
    bundle = load_bundle(path, method=LAP)  # the manifest schema has checked every key and type used below
    manifest = bundle.manifest
    config = SegmenterConfig.from_json(manifest["network"]["segmenter"])
    try:
        registry = ClassRegistry.from_json(manifest["classes"])
    except ValueError as exc:
        raise _inconsistent(bundle, str(exc)) from None
    step = manifest["step"]
    earlier_steps = [v["step"] for v in manifest["versions"] if v["weights"] != "segmenter"]
    if manifest["network"]["outputs"] != registry.num_outputs:
        raise _inconsistent(bundle, f"the segmenter has {manifest['network']['outputs']} outputs but the manifest "
                                    f"names {len(registry)} structures")
    missing = [name for name in [f"segmenter_step{s}" for s in earlier_steps]
               + [f"diffusion_step{s}" for s in manifest["diffusion"]["steps"]] if name not in manifest["weights"]]
    if missing or any(s >= step for s in earlier_steps):
        raise _inconsistent(bundle, f"its versions and weight files disagree ({', '.join(missing) or 'a version'} "
                                    "not listed)")
    segmenter = bundle.load_weights("segmenter", shapes=segmenter_shapes(config, registry.num_outputs))
    projection = bundle.load_weights("projection", shapes=state_shapes(
        lambda: ProjectionHead(config.embedding_channels))) if "projection" in bundle.weight_names() else None
    return LapModel(config=config, registry=registry, size=tuple(manifest["preprocessing"]["size"]), step=step,
                    segmenter=segmenter, diffusion_config=DiffusionConfig.from_json(manifest["diffusion"]["config"]),
                    history=list(manifest.get("history", [])),
                    synthetic_training_data=bool(manifest.get("synthetic_training_data", False)),
                    projection=projection, diffusion={s: None for s in manifest["diffusion"]["steps"]},
                    earlier={s: None for s in earlier_steps}, source=bundle)


def _inconsistent(bundle: Bundle, problem: str):
    return damaged_manifest(bundle.path / "manifest.json", problem)


def restore_version(model: LapModel, step: int) -> LapModel:
    """The model as it was after ``step``: its segmenter, structures, history and replay models up to then."""
    if step == model.step:
        return model
    if step not in model.earlier:
        have = ", ".join(str(s) for s in sorted([*model.earlier, model.step]))
        raise file_error(model.source.path if model.source else "model", f"has no version of step {step} "
                                                                          f"(versions: {have})")
    registry = ClassRegistry([e for e in model.registry.entries if e.step <= step])
    return LapModel(config=model.config, registry=registry, size=model.size, step=step,
                    segmenter=model.earlier_weights(step), diffusion_config=model.diffusion_config,
                    history=[h for h in model.history if int(h["step"]) <= step],
                    synthetic_training_data=any(h.get("synthetic_data") for h in model.history
                                                if int(h["step"]) <= step),
                    projection=None,
                    diffusion={s: model.diffusion_weights(s) for s in model.diffusion if s <= step},
                    earlier={s: model.earlier_weights(s) for s in model.earlier if s < step}, source=model.source)
