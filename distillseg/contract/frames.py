"""The frame files of the IncrementalLap method, read and written with Pillow by the engine and the Slicer module.

Conventions: a frame is a ``uint8`` array of shape (H, W, 3) (rows, columns, RGB); a label map is an integer array
of shape (H, W) whose values are class values (0 = background), stored as a grey index PNG (8-bit, 16-bit above
255). Grey or otherwise non-colour frames are refused with one sentence naming the file, because the IncrementalLap
models are trained on colour laparoscopic video. Outputs are written atomically (``distillseg.contract.atomic``).
A folder of generated frames carries ``SYNTHETIC_MARKER`` so that whatever is made from it says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from distillseg.contract.atomic import atomic_file
from distillseg.contract.errors import check_readable_file, file_error

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SYNTHETIC_MARKER = "SYNTHETIC_DATA.txt"
# Pillow modes that carry colour; palette images are colour unless every palette entry is grey.
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


def is_frame_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in FRAME_SUFFIXES


def is_synthetic_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds generated frames (it carries ``SYNTHETIC_MARKER``)."""
    return (Path(folder) / SYNTHETIC_MARKER).is_file()


def _open(path: Path):
    from PIL import Image, UnidentifiedImageError

    check_readable_file(path)
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise file_error(path, f"cannot be read as an image (truncated or not a PNG/JPEG/TIFF: "
                               f"{exc.__class__.__name__})") from None
    return image


def read_frame(path: str | os.PathLike) -> np.ndarray:
    """An RGB frame as ``uint8`` (H, W, 3); an alpha channel is dropped. Grey or binary images are refused."""
    path = Path(path)
    image = _open(path)
    if image.mode not in _COLOUR_MODES:
        raise file_error(path, f"is a {image.mode} (grey or single-channel) image; a colour (RGB) frame is needed")
    if image.mode in ("P", "PA"):
        palette = np.asarray(image.convert("RGB"))
        if np.array_equal(palette[..., 0], palette[..., 1]) and np.array_equal(palette[..., 1], palette[..., 2]):
            raise file_error(path, "is a grey palette image; a colour (RGB) frame is needed")
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if array.ndim != 3 or array.shape[0] < 8 or array.shape[1] < 8:
        raise file_error(path, f"frame of shape {array.shape} is too small (at least 8x8 pixels)")
    return array


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """An index mask as ``int64`` (H, W). RGB masks are accepted only when their three channels are equal."""
    path = Path(path)
    image = _open(path)
    if image.mode == "P":
        array = np.asarray(image)  # palette index = label value
    else:
        array = np.asarray(image)
        if array.ndim == 3:
            channels = array[..., :3]
            if not (np.array_equal(channels[..., 0], channels[..., 1])
                    and np.array_equal(channels[..., 1], channels[..., 2])):
                raise file_error(path, "is a colour image; a mask must hold one label value per pixel (grey/index)")
            array = channels[..., 0]
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.array_equal(array, np.round(array)):
            raise file_error(path, "mask holds non-integer values")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    return array.astype(np.int64)


def write_index_png(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a (H, W) label map as a grey PNG (8-bit, or 16-bit when a value exceeds 255), atomically."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"an index PNG needs a 2D label map, not shape {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise ValueError("label values must lie in 0..65535")
    image = (Image.fromarray(labels.astype(np.uint8), mode="L") if labels.max(initial=0) <= 255
             else Image.fromarray(labels.astype(np.uint16)))
    path = Path(path)
    with atomic_file(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def write_frame(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write an RGB (H, W, 3) uint8 frame; the format follows the suffix (PNG unless .jpg/.tif)."""
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    kind = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, "PNG")
    with atomic_file(path) as tmp:
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), mode="RGB").save(tmp, format=kind)
    return path
