"""What an exported OneShotSeg MONAI Bundle runs, as MONAI transforms, an inferer and a network: the steps of
``distillseg oneshot segment`` (``predict.OneShotPredictor.segment`` with the student predictor) around the same
functions, so the bundle gives the engine's label maps::

    NIfTI scan (1, X, Y, Z), its voxel -> RAS affine
      -> AlignToAtlasd: intensity normalisation to [0, 1] (``intensity``), affine pre-alignment to the atlas
         (``prealign.AtlasAligner``, world map atlas mm -> scan mm), trilinear resampling onto the working grid,
         the atlas prior's C channels after it (``atlas_prior``)            -> (1 [+ C], I, J, K) float32
      -> GaussianWindowInferer: the student (``OneShotStudent``, channels-last) in Gaussian-blended windows of the
         training patch (``windows.GaussianWindows``) or on the whole grid, softmax -> (C, I, J, K) probabilities
      -> LabelsOnScand: probabilities interpolated linearly through the inverse world map onto the scan's grid,
         argmax, class index -> label value (``geometry.resample_argmax``)   -> (1, X, Y, Z) label values

The model export copies this file and the modules it imports into the bundle's ``scripts/`` (their
``distillseg.oneshot`` imports made relative), so it imports nothing but torch, MONAI, NumPy and those modules.
Computation is fp32 (``distillseg oneshot segment --precision fp32`` gives the same labels, tested).
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.inferers import Inferer
from monai.transforms import MapTransform

from distillseg.oneshot.atlas_prior import atlas_prior
from distillseg.oneshot.geometry import Grid, resample, resample_argmax
from distillseg.oneshot.intensity import IntensityNormalization
from distillseg.oneshot.prealign import AtlasAligner
from distillseg.oneshot.unet import FeatureUNet
from distillseg.oneshot.windows import GaussianWindows

# Keys this bundle adds to the working-grid image's meta data, read back by ``LabelsOnScand``.
SCAN_AFFINE, SCAN_SHAPE, WORLD_MAP = "oneshot_scan_affine", "oneshot_scan_shape", "oneshot_world_map"


def _plain(image) -> torch.Tensor:
    """The tensor under a MetaTensor, or ``image`` as a tensor."""
    return image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)


class OneShotStudent(FeatureUNet):
    """The student network: ``FeatureUNet`` with the model's arguments, returning only the logits
    (B, C, I, J, K) of an input (B, 1 [+ C], I, J, K) (MONAI's inferers and ``verify_net_in_out`` want a tensor)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).output


class AlignToAtlasd(MapTransform):
    """A scan (1, X, Y, Z) on its own grid -> the student's input (1 [+ C], I, J, K) float32 on the working grid.

    ``atlas_file``: tensors ``image`` (I, J, K) float32 in [0, 1] and ``classes`` (I, J, K) int64 class indices,
    the atlas on the working grid (``grid_shape``, ``grid_affine`` voxel -> RAS mm); ``intensity``: the model's
    normalisation (``IntensityNormalization.to_json``); ``prealign``: align each scan to the atlas (False: the
    scans are taken as aligned already, the identity world map); ``prior_sigma``: the atlas prior's blur in
    working-grid voxels, or None for a student without prior channels; ``num_classes``: C, background included.
    The scan's affine and shape and the world map found go into the output's meta data (for ``LabelsOnScand``).
    """

    def __init__(self, keys: KeysCollection, atlas_file: str, grid_shape: Sequence[int],
                 grid_affine: Sequence[Sequence[float]], intensity: dict, prealign: bool, prior_sigma: float | None,
                 num_classes: int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        atlas = torch.load(atlas_file, map_location="cpu", weights_only=True)
        self.grid = Grid(tuple(int(s) for s in grid_shape), np.asarray(grid_affine, dtype=np.float64))
        self.normalization = IntensityNormalization.from_json(intensity)
        self.aligner = AtlasAligner(atlas["image"].float(), self.grid) if prealign else None
        self.prior = None if prior_sigma is None else \
            atlas_prior(atlas["classes"].long(), int(num_classes), float(prior_sigma))[0]  # (C, I, J, K)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            scan = d[key]
            affine = np.asarray(_plain(scan.affine), dtype=np.float64)
            source = Grid(tuple(int(s) for s in scan.shape[1:]), affine)
            normalised = torch.from_numpy(self.normalization.apply(_plain(scan)[0].numpy()))
            world_map = self.aligner.align(normalised, source) if self.aligner is not None else np.eye(4)
            image = resample(normalised[None], source, self.grid, world_map)  # (1, I, J, K)
            if self.prior is not None:
                image = torch.cat([image, self.prior.to(image.dtype)], dim=0)
            meta = {"filename_or_obj": scan.meta.get("filename_or_obj", ""), SCAN_AFFINE: affine,
                    SCAN_SHAPE: np.asarray(source.shape), WORLD_MAP: world_map}
            d[key] = MetaTensor(image, affine=torch.as_tensor(self.grid.affine), meta=meta)
        return d


class GaussianWindowInferer(Inferer):
    """Student input (1, 1 [+ C], I, J, K) -> class probabilities (1, C, I, J, K) float32 (softmax of the logits).

    ``window`` (working-grid voxels, each side at most the grid's) runs the network in Gaussian-blended windows
    (MONAI's ``SlidingWindowInferer(overlap=0.25, mode="gaussian")`` scheme, summed channels-last); None runs it on
    the whole grid at once. The input is made channels-last first, as the network's weights are.
    """

    def __init__(self, grid_shape: Sequence[int], window: Sequence[int] | None = None,
                 device: torch.device | str = "cpu"):
        super().__init__()
        grid = tuple(int(s) for s in grid_shape)
        self.windows = None if window is None else GaussianWindows(
            grid, tuple(min(int(w), g) for w, g in zip(window, grid)), device=device)

    def __call__(self, inputs: torch.Tensor, network, *args, **kwargs) -> torch.Tensor:
        batch = _plain(inputs).contiguous(memory_format=torch.channels_last_3d)
        if self.windows is None:
            return torch.softmax(network(batch)[0].float(), dim=0)[None]
        logits = self.windows(batch, network)  # (I, J, K, C)
        return torch.softmax(logits, dim=-1).permute(3, 0, 1, 2)[None]


class LabelsOnScand(MapTransform):
    """Class probabilities (C, I, J, K) on the working grid -> label values (1, X, Y, Z) on the scan's own grid
    (shape and affine from ``image_key``'s meta data, as ``AlignToAtlasd`` left them), as ``label_dtype``.

    Each scan voxel takes the class whose probability, interpolated linearly at the voxel's place in the working
    grid (through the inverse of the scan's world map), is largest; outside the working grid it is background.
    ``class_values``: class index -> label value (0 first).
    """

    def __init__(self, keys: KeysCollection, class_values: Sequence[int], grid_shape: Sequence[int],
                 grid_affine: Sequence[Sequence[float]], image_key: str = "image", label_dtype: str = "uint8",
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.values = torch.tensor([int(v) for v in class_values], dtype=torch.int64)
        self.grid = Grid(tuple(int(s) for s in grid_shape), np.asarray(grid_affine, dtype=np.float64))
        self.image_key, self.label_dtype = image_key, getattr(torch, label_dtype)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        meta = d[self.image_key].meta
        affine = np.asarray(_plain(meta[SCAN_AFFINE]), dtype=np.float64)
        scan_grid = Grid(tuple(int(s) for s in _plain(meta[SCAN_SHAPE]).tolist()), affine)
        world_map = np.asarray(_plain(meta[WORLD_MAP]), dtype=np.float64)
        for key in self.key_iterator(d):
            classes = resample_argmax(_plain(d[key]), self.grid, scan_grid, np.linalg.inv(world_map))
            labels = self.values.to(classes.device)[classes].cpu()
            d[key] = MetaTensor(labels[None].to(self.label_dtype), affine=torch.as_tensor(affine),
                                meta={"filename_or_obj": meta.get("filename_or_obj", "")})
        return d
