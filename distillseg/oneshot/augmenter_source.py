"""``oneshot train --augmenter-from MODEL``: start the student stage from an earlier model's trained augmenter.

Why: the augmenter (stage 1, the registration network) depends only on the atlas, the unlabelled scans and its own
options. Trainings that change only the student (its losses, prior, synthesis, iterations) can share one augmenter
instead of each training an identical one again, which is most of a CPU training's time at a fine spacing.

What must agree: the augmenter maps the atlas *as it lies on the working grid, normalised* to a scan, so the source
model's working grid and its stored atlas image must equal this training's (same atlas file, spacing and intensity
normalisation); anything else is refused with a sentence naming the model. The unlabelled scans may differ: the
augmenter is a registration network and is refined per scan (``--refine-iterations``) either way; the manifest
records what it was trained on. The augmenter's own training options (iterations, learning rate, loss weights,
network) become the source's, so this model's manifest says how its augmenter really was trained; the refinement
options stay this training's, since the refinement runs here.
"""

from __future__ import annotations

from dataclasses import fields, replace
import numpy as np
import torch

from distillseg.common.bundle import Bundle, load_bundle
from distillseg.contract.errors import UserError
from distillseg.contract.manifest import ONESHOT
from distillseg.oneshot.augmenter import RegistrationAugmenter
from distillseg.oneshot.train_augmenter import AugmenterOptions

# Options of the refinement that runs in *this* training: never taken from the source.
_REFINEMENT = ("refine_iterations", "refine_lr", "refine_smooth_weight")


def source_bundle(path: str) -> Bundle:
    """The OneShotSeg model named by ``--augmenter-from`` (its manifest validated; ``UserError`` otherwise)."""
    return load_bundle(path, ONESHOT)


def _refused(bundle: Bundle, problem: str) -> UserError:
    return UserError(f"--augmenter-from {bundle.path}: {problem}.")


def source_options(bundle: Bundle, own: AugmenterOptions) -> AugmenterOptions:
    """The augmenter options the source model's augmenter was trained with, keeping this run's refinement options."""
    recorded = bundle.manifest.get("training", {}).get("options", {}).get("augmenter")
    names = {f.name for f in fields(AugmenterOptions)}
    if not isinstance(recorded, dict) or not names - set(_REFINEMENT) <= set(recorded):
        raise _refused(bundle, "its manifest does not record how its augmenter was trained (not a model of "
                               "`oneshot train`, or of an older version)")
    chosen = {name: recorded[name] for name in names if name not in _REFINEMENT}
    wrong = sorted(name for name, value in chosen.items() if not _same_kind(value, getattr(own, name)))
    if wrong:
        raise _refused(bundle, f"its manifest records augmenter options of the wrong type ({', '.join(wrong)})")
    return replace(own, **chosen)


def _same_kind(value, default) -> bool:
    """Whether a recorded JSON value can stand for an option whose default is ``default`` (a global batch that
    was left to the engine is recorded settled, so ``None`` accepts a whole number)."""
    if default is None or isinstance(default, int) and not isinstance(default, bool):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
    return isinstance(value, type(default))


def source_augmenter(bundle: Bundle, atlas_image: torch.Tensor, grid_json: dict, device: torch.device
                     ) -> RegistrationAugmenter:
    """The source's trained augmenter, after checking that it was trained on this atlas on this working grid.

    ``atlas_image``: (I, J, K) this training's normalised atlas on its working grid; ``grid_json``: its grid.
    """
    source_grid = bundle.manifest["preprocessing"]["grid"]
    if list(source_grid["shape"]) != list(grid_json["shape"]) or not np.allclose(
            np.asarray(source_grid["affine"], float), np.asarray(grid_json["affine"], float), atol=1e-4):
        raise _refused(bundle, f"its working grid ({_describe(source_grid)}) is not this training's "
                               f"({_describe(grid_json)}): train with the same atlas and --spacing")
    shape = tuple(grid_json["shape"])
    stored = bundle.load_weights("atlas", "cpu", {"image": shape, "classes": shape})["image"]
    # The bundle stores the atlas in half precision: compare at that precision.
    if not torch.equal(stored, atlas_image.detach().cpu().half()):
        raise _refused(bundle, "it was trained with another atlas image or intensity normalisation (its stored "
                               "atlas differs from this training's)")
    config = bundle.manifest["networks"]["augmenter"]
    return bundle.load_network("augmenter", lambda: RegistrationAugmenter(**config), device).to(device)


def _describe(grid_json: dict) -> str:
    """'64x64x48 voxels of 2x2x2 mm, origin (x, y, z) mm' for a grid's JSON."""
    affine = np.asarray(grid_json["affine"], float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return (f"{'x'.join(map(str, grid_json['shape']))} voxels of {'x'.join(f'{s:g}' for s in spacing.round(3))} mm, "
            f"origin ({', '.join(f'{o:g}' for o in affine[:3, 3].round(2))}) mm")


def source_record(bundle: Bundle) -> dict:
    """What this model's manifest says about where its augmenter came from: the source's augmenter weights (by
    SHA-256), the inputs it was trained on (by content), its options and seconds; a source that itself borrowed its
    augmenter passes that record on, so the chain always names the training that made the weights."""
    training = bundle.manifest.get("training", {})
    if isinstance(training.get("augmenter_from"), dict):
        return training["augmenter_from"]
    return {"augmenter_sha256": bundle.manifest["weights"]["augmenter"]["sha256"],
            "model_name": bundle.manifest.get("name", ""),
            "inputs": training.get("inputs", []),
            "options": training.get("options", {}).get("augmenter", {}),
            "seconds": training.get("seconds", {}).get("augmenter")}
