"""What the engine does with a frame beyond reading and writing its file: the black border an endoscope leaves
around the picture, and colour overlays of a label map for reports and previews (the file formats themselves are
``distillseg.contract.frames``).

Conventions as there: a frame is ``uint8`` (H, W, 3) RGB, a label map an integer (H, W) array of class values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from distillseg.contract.atomic import StagedFiles
from distillseg.contract.outputs import ANY_FILE, OutputKind
from distillseg.contract.frames import write_frame

BLACK_BORDER_LEVEL = 10  # a row/column whose brightest pixel is at most this is part of the endoscope's black frame


def black_border_box(frame: np.ndarray, level: int = BLACK_BORDER_LEVEL) -> tuple[slice, slice]:
    """Rows and columns inside the black frame an endoscope leaves around the picture.

    ``frame``: (H, W, 3) uint8. Returns the slices of the bounding box of rows/columns whose brightest pixel exceeds
    ``level``; the whole frame when it has no such border (or is black throughout).
    """
    bright = frame.max(axis=2) > level
    rows = np.flatnonzero(bright.any(axis=1))
    cols = np.flatnonzero(bright.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return slice(0, frame.shape[0]), slice(0, frame.shape[1])
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def overlay(frame: np.ndarray, labels: np.ndarray, colors: dict[int, Sequence[int]], alpha: float = 0.5,
            caption: str | None = None) -> np.ndarray:
    """The frame with each labelled pixel blended with its class colour (``colors``: value -> RGB 0-255).

    ``caption`` is drawn in the top-left corner (used to mark pictures made from synthetic data).
    """
    out = frame.astype(np.float32).copy()
    for value, color in colors.items():
        where = labels == value
        if where.any():
            out[where] = (1 - alpha) * out[where] + alpha * np.asarray(color, dtype=np.float32)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    if caption:
        from PIL import Image, ImageDraw

        image = Image.fromarray(out)
        draw = ImageDraw.Draw(image)
        box = draw.textbbox((2, 2), caption)
        draw.rectangle(box, fill=(0, 0, 0))
        draw.text((2, 2), caption, fill=(255, 255, 255))
        out = np.asarray(image)
    return out


def write_overlay(path: str | os.PathLike, frame: np.ndarray, labels: np.ndarray,
                  colors: dict[int, Sequence[int]], alpha: float = 0.5, caption: str | None = None,
                  staged: StagedFiles | None = None, kind: OutputKind = ANY_FILE) -> Path:
    """Write ``overlay(...)`` as a colour picture (PNG/JPEG by suffix), atomically (in the batch ``staged``),
    replacing what ``kind`` recognises."""
    return write_frame(path, overlay(frame, labels, colors, alpha, caption), staged, kind)
