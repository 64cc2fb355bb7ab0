"""The frame files of the IncrementalLap method, read and written with Pillow by the engine and the Slicer module.

Conventions: a frame is a ``uint8`` array of shape (H, W, 3) (rows, columns, RGB); a label map is an integer array
of shape (H, W) whose values are class values (0 = background), stored as a grey index PNG (8-bit, 16-bit above
255). Grey or otherwise non-colour frames are refused with one sentence naming the file, because the IncrementalLap
models are trained on colour laparoscopic video, and so are pictures larger than ``MAX_FRAME_PIXELS`` (a PNG of a
few kilobytes can claim billions of pixels: a decompression bomb). Outputs are written atomically
(``distillseg.contract.atomic``) and PNGs carry the engine's mark (``distillseg.contract.outputs``), so a later
run may replace them but never a picture of the user's. A folder of generated frames carries ``SYNTHETIC_MARKER``
so that whatever is made from it says so.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from distillseg.contract.atomic import StagedFiles, atomic_file
from distillseg.contract.errors import check_readable_file, file_error
from distillseg.contract.outputs import ANY_FILE, OutputKind, mark, marked_file, marked_folder

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
SYNTHETIC_MARKER = "SYNTHETIC_DATA.txt"
MAX_FRAME_PIXELS = 64_000_000  # 8 x a 4K frame; the largest real frames (DSAD: 1920 x 1080) are 2 M
INDEX_MAP = marked_file("an index PNG", "index-map")
PICTURE = marked_file("a picture", "picture")
# Pillow modes that carry colour; palette images are colour unless every palette entry is grey.
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


def is_frame_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in FRAME_SUFFIXES


def is_synthetic_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds generated frames (it carries ``SYNTHETIC_MARKER``)."""
    return (Path(folder) / SYNTHETIC_MARKER).is_file()


def synthetic_folder(description: str, token: str) -> OutputKind:
    """A folder of generated data as an output: recognised (and replaceable) by its ``SYNTHETIC_MARKER`` file
    carrying the mark ``token`` (written by ``write_synthetic_marker``)."""
    return marked_folder(description, token, SYNTHETIC_MARKER)


DEMO_FRAMES = synthetic_folder("a folder of demo frames", "lap-demo-frames")
REPLAY_FRAMES = synthetic_folder("a folder of replayed frames", "lap-replay-frames")


def write_synthetic_marker(folder: str | os.PathLike, note: str, token: str) -> None:
    """``SYNTHETIC_MARKER`` in ``folder``: ``note`` for people, then the engine's mark of the folder's kind."""
    (Path(folder) / SYNTHETIC_MARKER).write_text(f"{note}\n{mark(token)}\n", encoding="utf-8")


def _open(path: Path):
    """The image, decoded, once its header shows it fits ``MAX_FRAME_PIXELS``."""
    from PIL import Image, UnidentifiedImageError

    check_readable_file(path)
    try:
        with warnings.catch_warnings():
            # Pillow warns (and beyond twice its limit raises) about huge images; the size check below decides.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > MAX_FRAME_PIXELS:
                raise file_error(path, f"claims {width}x{height} pixels, more than a frame can have (at most "
                                       f"{MAX_FRAME_PIXELS // 1_000_000} million); it is damaged or not a frame")
            image.load()
    except Image.DecompressionBombError:
        raise file_error(path, "claims more pixels than a frame can have (a decompression bomb); it is damaged or "
                               "not a frame") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise file_error(path, f"cannot be read as an image (truncated or not a PNG/JPEG/TIFF: "
                               f"{exc.__class__.__name__})") from None
    return image


def _png_info(token: str):
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", mark(token))
    return info


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


def write_index_png(path: str | os.PathLike, labels: np.ndarray, staged: StagedFiles | None = None,
                    kind: OutputKind = ANY_FILE) -> Path:
    """Write a (H, W) label map as a grey PNG (8-bit, or 16-bit when a value exceeds 255), atomically (in the batch
    ``staged`` when given), marked as the engine's; it may replace what ``kind`` recognises (the segment verb
    passes ``INDEX_MAP``: only an index PNG the engine wrote)."""
    from PIL import Image

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"an index PNG needs a 2D label map, not shape {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise ValueError("label values must lie in 0..65535")
    image = (Image.fromarray(labels.astype(np.uint8), mode="L") if labels.max(initial=0) <= 255
             else Image.fromarray(labels.astype(np.uint16)))
    path = Path(path)
    with atomic_file(path, kind, staged) as tmp, open(tmp, "wb") as handle:
        image.save(handle, format="PNG", pnginfo=_png_info("index-map"))
    return path


def write_frame(path: str | os.PathLike, frame: np.ndarray, staged: StagedFiles | None = None,
                kind: OutputKind = ANY_FILE) -> Path:
    """Write an RGB (H, W, 3) uint8 picture (a frame, an overlay); the format follows the suffix (PNG unless
    .jpg/.tif); it may replace what ``kind`` recognises. Only a PNG carries the engine's mark, so ``PICTURE``
    recognises only a PNG the engine wrote."""
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    file_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(suffix, "PNG")
    extra = {"pnginfo": _png_info("picture")} if file_format == "PNG" else {}
    with atomic_file(path, kind, staged) as tmp, open(tmp, "wb") as handle:
        Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), mode="RGB").save(handle, format=file_format,
                                                                                      **extra)
    return path
