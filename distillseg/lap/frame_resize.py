"""How an IncrementalLap frame is brought to the working grid, and a prediction back: once as plain torch (the
engine's ``lap`` verbs) and once as a MONAI dictionary transform (an exported MONAI Bundle's preprocessing).

The model export copies this file verbatim into the bundle as ``scripts/frame_resize.py``, so it imports nothing
but torch and MONAI: the bundle runs without distillseg, with exactly the engine's arithmetic. MONAI's own
``Resize(anti_aliasing=True)`` smooths with a Gaussian first, which is not torch's antialiased bilinear filter the
models were trained with, and does not round to whole 8-bit levels; hence this transform.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.data.utils import to_affine_nd
from monai.transforms import InvertibleTransform, MapTransform
from monai.transforms.utils import scale_affine
from monai.utils import TraceKeys, convert_to_dst_type


def resize_levels(frame: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Channel-first intensities 0..255 (C, h, w), any dtype -> float (C, H, W) with (H, W) = ``size``, resampled
    with torch's antialiased bilinear filter and rounded to whole levels 0..255, as an 8-bit frame on the working
    grid holds them."""
    resized = F.interpolate(frame[None].float(), size=tuple(size), mode="bilinear", antialias=True,
                            align_corners=False)
    return resized[0].round().clamp(0, 255)


def _plain(image) -> torch.Tensor:
    """The tensor under a MetaTensor (its meta is carried over separately), or ``image`` as a tensor."""
    return image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)


def resize_back(values: torch.Tensor, size: Sequence[int], mode: str = "bilinear") -> torch.Tensor:
    """(K, H, W), e.g. class probabilities on the working grid -> float (K, h, w) with (h, w) = ``size``, by plain
    (not antialiased) interpolation."""
    corners = None if mode.startswith("nearest") else False
    return F.interpolate(values[None].float(), size=tuple(size), mode=mode, align_corners=corners)[0]


class ResizeFramed(MapTransform, InvertibleTransform):
    """Frames (C, h, w), intensities 0..255 -> (C, H, W) by ``resize_levels``; invertible.

    The inverse (``Invertd`` on a prediction) brings a channel-first map, e.g. class probabilities (K, H, W), back
    to (K, h, w) with bilinear interpolation, or nearest neighbour when ``Invertd(nearest_interp=True)`` rewrote the
    recorded mode. The spatial affine is updated both ways, as MONAI's ``Resized`` does.
    """

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int], allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.spatial_size = tuple(int(s) for s in spatial_size)

    @staticmethod
    def _resized(image, values: torch.Tensor):
        """``values`` as the type of ``image`` (a MetaTensor keeps its meta), the spatial affine rescaled."""
        out = convert_to_dst_type(values, image, dtype=values.dtype)[0]
        if hasattr(out, "affine"):
            scale = scale_affine(tuple(image.shape[1:]), tuple(values.shape[1:]))
            out.affine = out.affine @ to_affine_nd(out.affine, torch.as_tensor(scale, dtype=out.affine.dtype))
        return out

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            original = tuple(int(s) for s in image.shape[1:])
            out = self._resized(image, resize_levels(_plain(image), self.spatial_size))
            d[key] = self.push_transform(out, orig_size=original, extra_info={"mode": "bilinear"})
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            operation = self.pop_transform(d[key])
            original = tuple(int(s) for s in operation[TraceKeys.ORIG_SIZE])
            mode = operation[TraceKeys.EXTRA_INFO]["mode"]
            d[key] = self._resized(d[key], resize_back(_plain(d[key]), original, mode))
        return d
