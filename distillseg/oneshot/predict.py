"""Segment scans with a trained one-shot bundle (DESIGN §4 step 4).

For each scan: normalise as the atlas was, pre-align it to the atlas copy in the bundle, resample it into the
working grid, run the student once (with the atlas prior as extra input channels when it was trained with one) —
in Gaussian-blended windows (``windows.GaussianWindows``, MONAI's sliding-window scheme) of its training patch or of
what the memory budget allows — and bring the class probabilities back onto the scan's own grid through the inverse
world map, interpolating probabilities linearly and taking the argmax slab by slab, so the label map lies exactly
on the scan's grid (same shape, spacing, origin, direction). ``predictor="augmenter"`` instead warps the atlas labels
with the learned registration (the benchmark's "augmenter alone"). Two floors need no network, so a user can see
what the model adds: ``"affine"`` places the atlas labels with the affine pre-alignment only, ``"identity"`` where
the scans' headers put them (no registration at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

from distillseg.common.bundle import Bundle
from distillseg.common.device import autocast
from distillseg.contract.manifest import damaged_manifest
from distillseg.contract.labels import LabelTable
from distillseg.common.volume_io import Volume
from distillseg.oneshot.atlas_prior import atlas_prior
from distillseg.oneshot.augmenter import RegistrationAugmenter
from distillseg.oneshot.data import align_scan
from distillseg.oneshot.geometry import Grid, resample_argmax
from distillseg.oneshot.instance_optimization import refine_velocity, refinement_smoothness
from distillseg.oneshot.intensity import IntensityNormalization
from distillseg.oneshot.prealign import AtlasAligner
from distillseg.oneshot.registration_bound import bound_to_registration, unite_with_registration
from distillseg.oneshot.unet import FeatureUNet
from distillseg.oneshot.windows import GaussianWindows


@dataclass
class Segmentation:
    """A scan's label map (I, J, K) of label values on the scan's own grid, and the world map used."""

    labels: np.ndarray
    affine: np.ndarray
    world_map: np.ndarray


PREDICTORS = ("student", "augmenter", "affine", "identity")
# Resampling the atlas labels onto the working grid can split a few voxels off a compact structure: with 95 % of
# its voxels in one piece it still counts as one piece (``--keep-largest atlas``). Fixed a priori, not tuned.
ONE_PIECE_SHARE = 0.95
BASELINES = ("affine", "identity")  # the atlas's own labels, placed without a network


def check_consistent(bundle: Bundle) -> None:
    """What the manifest schema cannot say: the parts of a one-shot manifest agree with each other (``UserError``
    naming the manifest otherwise)."""
    manifest, where = bundle.manifest, bundle.path / "manifest.json"
    values = manifest["class_values"]
    student = manifest["networks"]["student"]
    grid = np.asarray(manifest["preprocessing"]["grid"]["affine"], dtype=np.float64)
    intensity = manifest["preprocessing"]["intensity"]
    problems = [
        (student["out_channels"] != len(values), f"the student has {student['out_channels']} outputs but "
                                                 f"class_values lists {len(values)} classes"),
        (student.get("prior_channels", 0) not in (0, len(values)), "the student's prior_channels must be 0 or one "
                                                                   "per class"),
        (not {entry["value"] for entry in manifest["labels"]} <= set(values[1:]), "a label value is not one of "
                                                                              "class_values"),
        (not np.all(np.isfinite(grid)) or abs(np.linalg.det(grid[:3, :3])) < 1e-12,
         "the working grid's voxel-to-world matrix is singular or not finite"),
        (not intensity["low"] < intensity["high"], "the intensity normalisation's low is not below its high"),
    ]
    for wrong, problem in problems:
        if wrong:
            raise damaged_manifest(where, problem)


class OneShotPredictor:
    def __init__(self, bundle: Bundle, device: torch.device, dtype: torch.dtype | None, predictor: str = "student",
                 window: tuple[int, int, int] | None = None, refine_iterations: int | None = None,
                 compile_network: bool = False, registration_margin: float | None = None,
                 registration_union: bool = False, registration_fusion: float = 0.0,
                 refine_smooth_weight: float | None = None):
        """``window``: sliding-window size in working-grid voxels, or None to run the whole grid at once;
        ``refine_iterations``: instance optimisation of the augmenter's field per scan (default: as in training for
        the augmenter predictor, the fusion and the registration margin; none for the union alone, whose one-pass
        warp measured as good: docs/oneshot.md);
        ``compile_network``: ``torch.compile`` the student (worth it for many scans: the first call compiles for a
        minute or more); ``registration_margin``: student predictor only, keep each structure within this many mm
        of where the augmenter's warp of the atlas puts it (``registration_bound``; None = unbounded);
        ``registration_union``: student predictor only, a structure in several pieces in the atlas also takes the
        voxels the augmenter's warp of the atlas gives it (``registration_bound``);
        ``registration_fusion``: student predictor only, the weight in [0, 1] of the per-scan refined warp of the
        atlas labels averaged with the student's probabilities (0 = off; when on, it replaces the union, which it
        covers); ``refine_smooth_weight``: the per-scan refinement's smoothness weight (None: as in training)."""
        check_consistent(bundle)
        manifest = bundle.manifest
        self.manifest = manifest  # its name and creation time identify the algorithm in a DICOM SEG
        self.device, self.dtype, self.predictor = device, dtype, predictor
        self.values = torch.tensor(manifest["class_values"], dtype=torch.int64)
        self.table = LabelTable.from_json(manifest["labels"])
        pre = manifest["preprocessing"]
        self.grid = Grid.from_json(pre["grid"])
        self.normalization = IntensityNormalization.from_json(pre["intensity"])
        atlas = bundle.load_weights("atlas", device, {"image": self.grid.shape, "classes": self.grid.shape})
        self.atlas_image = atlas["image"].float()
        # Built once: a predictor kept by the worker aligns every later scan without redoing the atlas's side.
        # "identity" is the floor without any registration: no aligner.
        self.aligner = AtlasAligner(self.atlas_image, self.grid) \
            if pre.get("prealign", True) and predictor != "identity" else None
        self.atlas_classes = atlas["classes"].long()
        self.registration_margin = registration_margin if predictor == "student" else None
        self.registration_fusion = registration_fusion if predictor == "student" else 0.0
        # An atlas whose structures are all one piece leaves the union nothing to do: no registration pass then.
        # The fusion gives every structure the registration's extent, so the union adds nothing beside it (and
        # measured slightly worse on top of it: docs/oneshot.md).
        self.registration_union = registration_union and predictor == "student" and not self.registration_fusion \
            and bool(self.fragmented_classes)
        self.augmenter = None
        self.refine_iterations = 0  # per-scan refinement steps; set below when a warp is used
        if predictor == "augmenter" or self.registration_margin is not None or self.registration_union \
                or self.registration_fusion:
            self.augmenter = bundle.load_network(
                "augmenter", lambda: RegistrationAugmenter(**manifest["networks"]["augmenter"]), device)
            self.augmenter.to(device).eval().requires_grad_(False)
            trained = manifest.get("training", {}).get("options", {}).get("augmenter", {})
            if refine_iterations is None:
                # Each use with the warp it was measured with (docs/oneshot.md): the margin cuts the student at the
                # warp's edge and needs the refined one (0 mm on the one-pass warp lost 0.11 Dice); the union only
                # adds a fragmented structure's extent, which the one-pass warp already gives. The fusion's labels
                # are the warp's, so they need the refined one as much as the augmenter predictor does.
                refined = predictor == "augmenter" or self.registration_margin is not None \
                    or bool(self.registration_fusion)
                refine_iterations = trained.get("refine_iterations", 0) if refined else 0
            self.refine_iterations = refine_iterations
            # The refinement as in training (a model from before these were recorded: the defaults then) unless
            # the call sets the smoothness: with the fusion a more pliant warp measured better on brains.
            self.refine_lr = trained.get("refine_lr", 0.05)
            self.refine_window = trained.get("window", 9)
            recorded = refinement_smoothness(trained.get("smooth_weight", 1.0), trained.get("refine_smooth_weight"))
            self.refine_smooth = recorded if refine_smooth_weight is None else refine_smooth_weight
        if predictor == "student":
            self.network = bundle.load_network("student", lambda: FeatureUNet(**manifest["networks"]["student"]),
                                               device)
            if self.network.prior_channels:
                self.prior = atlas_prior(self.atlas_classes, len(self.values), float(pre["atlas_prior_sigma"]))
        elif predictor in BASELINES:
            self.network = None
        elif predictor == "augmenter":
            self.network = self.augmenter
        else:
            raise ValueError(f"predictor must be one of {PREDICTORS}, not {predictor!r}")
        if self.network is not None:
            self.network.to(device).eval().requires_grad_(False)
            if device.type == "cpu" or device.type == "cuda":
                # channels_last_3d lets oneDNN/cuDNN pick their fastest 3D convolution kernels.
                self.network.to(memory_format=torch.channels_last_3d)
        self.run = torch.compile(self.network, dynamic=False) if compile_network and self.network else self.network
        # Windows larger than the grid along an axis cover that whole axis.
        self.windows = None if window is None else GaussianWindows(
            self.grid.shape, tuple(min(w, g) for w, g in zip(window, self.grid.shape)), device=device)

    @cached_property
    def one_piece_values(self) -> list[int]:
        """Label values of the structures that are one connected piece (full connectivity) in the atlas on the
        working grid: the largest piece holds at least ``ONE_PIECE_SHARE`` of the structure's voxels (computed on
        first use, once per predictor)."""
        from scipy import ndimage

        classes = self.atlas_classes.cpu().numpy()
        connectivity = ndimage.generate_binary_structure(3, 3)
        values = []
        for index, value in enumerate(self.values.tolist()[1:], 1):
            pieces, count = ndimage.label(classes == index, connectivity)
            sizes = np.bincount(pieces.ravel())[1:]
            if count and sizes.max() >= ONE_PIECE_SHARE * sizes.sum():
                values.append(int(value))
        return values

    @cached_property
    def fragmented_classes(self) -> list[int]:
        """Class indices (not label values) of the structures that are not one piece in the atlas: those
        ``--registration-union`` unites with their registered atlas region."""
        return [c for c, v in enumerate(self.values.tolist()) if c and v not in self.one_piece_values]

    @torch.no_grad()
    def scores(self, image: torch.Tensor, on_refine_step=None) -> torch.Tensor:
        """Class scores (C, I, J, K) on the working grid for an aligned image (I, J, K) in [0, 1] (a channels-last
        view when computed in windows); ``on_refine_step(iteration, loss)`` follows the per-scan refinement."""
        if self.predictor in BASELINES:
            return F.one_hot(self.atlas_classes.to(self.device), len(self.values)).permute(3, 0, 1, 2).float()
        if self.predictor == "augmenter":
            return self.warped_atlas(image, on_refine_step)
        scores = self.student_scores(image)
        if self.augmenter is None:
            return scores
        warped = self.warped_atlas(image, on_refine_step)
        if self.registration_margin is not None:
            scores = bound_to_registration(scores, warped, self.grid.spacing, self.registration_margin)
        if self.registration_fusion:
            scores = (1.0 - self.registration_fusion) * scores + self.registration_fusion * warped
        if self.registration_union:
            scores = unite_with_registration(scores, warped, self.fragmented_classes)
        return scores

    @torch.no_grad()
    def warped_atlas(self, image: torch.Tensor, on_refine_step=None) -> torch.Tensor:
        """The atlas's one-hot labels (C, I, J, K) warped onto an aligned image (I, J, K) by the augmenter's
        deformation, refined per scan when ``refine_iterations`` says so (``on_refine_step(iteration, loss)`` after
        each iteration)."""
        batch = image.to(self.device)[None, None]
        atlas = self.atlas_image.to(self.device)[None, None]
        velocity = self.augmenter.velocity(atlas, batch)
        if self.refine_iterations:
            with torch.enable_grad():
                velocity = refine_velocity(self.augmenter, atlas, batch, velocity, self.refine_iterations,
                                           lr=self.refine_lr, window=self.refine_window,
                                           smooth_weight=self.refine_smooth, step_callback=on_refine_step)
        displacement = self.augmenter.displacement(velocity, batch.shape[2:])
        onehot = F.one_hot(self.atlas_classes.to(self.device), len(self.values)).permute(3, 0, 1, 2)[None]
        return self.augmenter.warp(onehot.float(), displacement)[0]

    @torch.no_grad()
    def student_scores(self, image: torch.Tensor) -> torch.Tensor:
        """The student's class probabilities (C, I, J, K) for an aligned image (I, J, K) (a channels-last view when
        computed in windows)."""
        batch = image.to(self.device)[None, None]
        if self.network.prior_channels:
            batch = torch.cat([batch, self.prior.to(batch.dtype)], dim=1)
        batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with autocast(self.device, self.dtype):
            if self.windows is None:
                return torch.softmax(self.run(batch)[0][0].float(), dim=0)
            logits = self.windows(batch, lambda x: self.run(x)[0])  # (I, J, K, C)
        return torch.softmax(logits, dim=-1).permute(3, 0, 1, 2)

    def segment(self, volume: Volume, on_refine_step=None) -> Segmentation:
        """Label map of ``volume`` on its own grid; ``on_refine_step(iteration, loss)`` is called after each of the
        ``refine_iterations`` iterations of the per-scan refinement (progress: about a minute on a CPU)."""
        aligned = align_scan(volume, self.grid, self.normalization, self.aligner, self.device)
        scores = self.scores(aligned.image, on_refine_step)
        scan_grid = Grid(volume.shape, volume.affine)
        classes = resample_argmax(scores, self.grid, scan_grid, np.linalg.inv(aligned.world_map))
        labels = self.values.to(classes.device)[classes].cpu().numpy()
        return Segmentation(labels=labels, affine=volume.affine, world_map=aligned.world_map)
