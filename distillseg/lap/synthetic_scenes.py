"""A generator of SYNTHETIC laparoscopic-looking scenes, written in the DSAD folder layout (for demos and tests).

These are not real surgical images. Each frame shows textured, shaded, organ-like regions of the 11 DSAD structures
(large smooth organs, tubular vessels and ureter, loops of small intestine) on a fatty background, occluded by
metallic instruments, with specular highlights, vignetting and the black border of an endoscope. Every patient has
its own appearance (colour cast, brightness, organ colours and texture scale, which structures are usually in view),
so a model trained on some patients meets a domain shift on new ones, as in real surgery.

Written layout (masks 0/255)::

    <out>/<structure>/<NN>/imageXX.png + maskXX.png      frames in which that structure is visible
    <out>/multilabel/<NN>/imageXX.png + maskXX_<structure>.png   every frame, all 11 structures
    <out>/SYNTHETIC_DATA.txt, <out>/dataset.json         say that the data is synthetic
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from distillseg.contract.atomic import atomic_directory
from distillseg.contract.frames import DEMO_FRAMES, write_frame, write_index_png, write_synthetic_marker
from distillseg.lap.classes import DSAD_STRUCTURES
from distillseg.lap.dsad import MULTILABEL

SYNTHETIC_NOTE = ("SYNTHETIC data made by 'distillseg lap demo-data': generated pictures that imitate the layout of "
                  "the Dresden Surgical Anatomy Dataset; they are not laparoscopic images of any patient.")
# How each structure is drawn: a compact organ, a long tube (vessel, ureter) or a bundle of loops (intestine).
_SHAPES = {
    "abdominal_wall": "wall", "colon": "tube_wide", "inferior_mesenteric_artery": "tube_thin",
    "intestinal_veins": "tube_thin", "liver": "organ_large", "pancreas": "organ", "small_intestine": "loops",
    "spleen": "organ", "stomach": "organ_large", "ureter": "tube_thin", "vesicular_glands": "organ_small",
}
# Texture frequency (pixels of the finest pattern) per structure, so structures differ in texture, not only colour.
_TEXTURE = {"abdominal_wall": 3.0, "colon": 2.0, "inferior_mesenteric_artery": 6.0, "intestinal_veins": 6.0,
            "liver": 8.0, "pancreas": 1.5, "small_intestine": 2.5, "spleen": 5.0, "stomach": 4.0, "ureter": 6.0,
            "vesicular_glands": 1.2}
_DRAW_ORDER = ["abdominal_wall", "liver", "stomach", "spleen", "colon", "small_intestine", "pancreas",
               "vesicular_glands", "intestinal_veins", "inferior_mesenteric_artery", "ureter"]


@dataclass
class PatientStyle:
    """What stays the same over one patient's frames."""

    tint: np.ndarray              # (3,) multiplicative colour cast
    brightness: float
    colors: dict[str, np.ndarray]  # per structure RGB in 0..1
    texture_scale: float
    presence: dict[str, float]     # probability that a structure is in view
    border: tuple[int, int]        # black border width left/right in pixels


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered noise of the given correlation length (pixels)."""
    # Smooth fields are made on a coarser grid and enlarged: the same look at a fraction of the filtering cost.
    factor = max(1, int(sigma // 3))
    coarse = tuple(-(-s // factor) for s in shape)
    field = ndimage.gaussian_filter(rng.standard_normal(coarse), sigma=max(sigma / factor, 0.5), mode="wrap")
    if factor > 1:
        field = ndimage.zoom(field, factor, order=1)[: shape[0], : shape[1]]
    return (field - field.mean()) / (field.std() + 1e-8)


def _patient_style(rng: np.random.Generator, width: int) -> PatientStyle:
    colors = {}
    for name, rgb in DSAD_STRUCTURES.items():
        jitter = rng.normal(0, 0.05, size=3)
        colors[name] = np.clip(np.asarray(rgb) / 255.0 + jitter, 0.05, 0.98)
    presence = {name: float(rng.uniform(0.35, 0.65)) for name in DSAD_STRUCTURES}
    side = int(width * rng.uniform(0.02, 0.08))
    return PatientStyle(tint=np.clip(rng.normal(1.0, 0.08, size=3), 0.8, 1.2), brightness=float(rng.uniform(0.8, 1.1)),
                        colors=colors, texture_scale=float(rng.uniform(0.7, 1.4)), presence=presence,
                        border=(side, side + int(rng.integers(0, 3))))


def _blob(rng, shape, center, radius, roughness=0.25) -> np.ndarray:
    """A compact region: an ellipse whose radius is modulated by smooth noise."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    ratio = rng.uniform(0.5, 1.0)
    dy, dx = yy - center[0], xx - center[1]
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ratio
    distance = np.sqrt(u ** 2 + v ** 2) / radius
    return distance + roughness * _smooth_noise(rng, shape, sigma=radius / 3) < 1.0


def _tube(rng, shape, width_px) -> np.ndarray:
    """A long curved band crossing the frame (a vessel, the ureter, the colon)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if rng.random() < 0.5:  # mostly horizontal
        a = rng.uniform(0.2, 0.8) * h
        path = a + rng.uniform(-0.2, 0.2) * h * np.sin(xx / w * rng.uniform(1.5, 4.0) * np.pi + rng.uniform(0, 6))
        distance = np.abs(yy - path)
    else:
        a = rng.uniform(0.2, 0.8) * w
        path = a + rng.uniform(-0.2, 0.2) * w * np.sin(yy / h * rng.uniform(1.5, 4.0) * np.pi + rng.uniform(0, 6))
        distance = np.abs(xx - path)
    return distance < width_px / 2 * (1 + 0.2 * _smooth_noise(rng, shape, sigma=width_px))


def _region(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    scale = min(h, w)
    if kind == "wall":
        side = rng.integers(0, 4)
        depth = rng.uniform(0.15, 0.3)
        yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
        coord = [yy, 1 - yy, xx, 1 - xx][side]
        return coord + 0.05 * _smooth_noise(rng, shape, sigma=scale / 8) < depth
    if kind.startswith("organ"):
        radius = scale * {"organ_large": rng.uniform(0.3, 0.45), "organ": rng.uniform(0.18, 0.28),
                          "organ_small": rng.uniform(0.1, 0.16)}[kind]
        center = (rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w)
        return _blob(rng, shape, center, radius)
    if kind == "loops":
        region = np.zeros(shape, dtype=bool)
        center = np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w])
        for _ in range(int(rng.integers(3, 6))):
            offset = rng.normal(0, scale * 0.12, size=2)
            region |= _blob(rng, shape, center + offset, scale * rng.uniform(0.08, 0.14), roughness=0.15)
        return region
    width_px = scale * (rng.uniform(0.1, 0.16) if kind == "tube_wide" else rng.uniform(0.03, 0.06))
    return _tube(rng, shape, width_px)


def _instrument(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A metallic shaft entering from the image edge: its mask and a shading image in 0..1."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    start = np.array([rng.uniform(0.6, 1.0) * h, rng.choice([0.0, w])])
    tip = np.array([rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w])
    direction = (tip - start) / np.linalg.norm(tip - start)
    rel_y, rel_x = yy - start[0], xx - start[1]
    along = rel_y * direction[0] + rel_x * direction[1]
    across = -rel_y * direction[1] + rel_x * direction[0]
    half_width = min(h, w) * rng.uniform(0.04, 0.07)
    mask = (np.abs(across) < half_width) & (along > 0) & (along < np.linalg.norm(tip - start))
    shade = 0.55 + 0.35 * np.cos(across / half_width * np.pi / 2) ** 2
    return mask, shade


def render_frame(rng: np.random.Generator, style: PatientStyle, shape: tuple[int, int]
                 ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One frame (H, W, 3) uint8 and the visible mask of every structure (bool (H, W))."""
    h, w = shape
    left, right = style.border
    inner = (h, w - left - right)
    fat = np.array([0.85, 0.72, 0.45]) * (1 + 0.06 * _smooth_noise(rng, inner, 4)[..., None])
    picture = fat + 0.05 * _smooth_noise(rng, inner, 1.5)[..., None]
    owner = np.full(inner, -1, dtype=np.int16)
    for index, name in enumerate(_DRAW_ORDER):
        if rng.random() > style.presence[name]:
            continue
        region = _region(_SHAPES[name], rng, inner)
        texture = _smooth_noise(rng, inner, _TEXTURE[name] * style.texture_scale)
        shading = 0.85 + 0.15 * _smooth_noise(rng, inner, min(inner) / 4)
        color = style.colors[name][None, None, :] * (1 + 0.12 * texture[..., None]) * shading[..., None]
        edge = ndimage.binary_erosion(region, iterations=1)
        picture[region] = color[region]
        picture[region & ~edge] *= 0.75  # a darker rim, as organ edges look in endoscopy
        owner[region] = index
    for _ in range(int(rng.integers(0, 3))):
        mask, shade = _instrument(rng, inner)
        picture[mask] = np.array([0.6, 0.62, 0.65])[None, :] * shade[mask][:, None]
        owner[mask] = -1
    for _ in range(int(rng.integers(4, 12))):
        spot = _blob(rng, inner, (rng.uniform(0, inner[0]), rng.uniform(0, inner[1])),
                     min(inner) * rng.uniform(0.01, 0.03), roughness=0.1)
        picture[spot] = 0.3 * picture[spot] + 0.7
    yy, xx = np.mgrid[0:inner[0], 0:inner[1]]
    radial = ((yy - inner[0] / 2) / inner[0]) ** 2 + ((xx - inner[1] / 2) / inner[1]) ** 2
    picture *= (1 - 0.9 * radial)[..., None] * style.brightness * style.tint[None, None, :]
    picture += rng.normal(0, 0.015, size=picture.shape)
    frame = np.zeros((h, w, 3), dtype=np.uint8)
    frame[:, left:w - right] = np.clip(np.round(picture * 255), 0, 255).astype(np.uint8)
    masks = {}
    for index, name in enumerate(_DRAW_ORDER):
        full = np.zeros((h, w), dtype=bool)
        full[:, left:w - right] = owner == index
        masks[name] = full
    return frame, masks


def write_demo_data(out: str | Path, patients: int, frames_per_patient: int, size: tuple[int, int] = (240, 320),
                    seed: int = 0, min_pixels: int = 20, stage=None) -> dict:
    """Write a synthetic data set in the DSAD layout into ``out`` (atomically; replaces an older one).

    Returns a summary: patients, frames, and per structure the number of frames in which it is visible (at least
    ``min_pixels`` pixels, the rule for putting a frame into that structure's folder).
    """
    rng = np.random.default_rng(seed)
    counts = {name: 0 for name in DSAD_STRUCTURES}
    out = Path(out)
    with atomic_directory(out, DEMO_FRAMES) as tmp:
        done = 0
        for patient in range(1, patients + 1):
            number = f"{patient:02d}"
            style = _patient_style(rng, size[1])
            for frame_index in range(frames_per_patient):
                frame, masks = render_frame(rng, style, size)
                frame_id = f"{frame_index:02d}"
                multi = tmp / MULTILABEL / number
                write_frame(multi / f"image{frame_id}.png", frame)
                for name, mask in masks.items():
                    write_index_png(multi / f"mask{frame_id}_{name}.png", mask.astype(np.uint8) * 255)
                    if mask.sum() >= min_pixels:
                        counts[name] += 1
                        folder = tmp / name / number
                        write_frame(folder / f"image{frame_id}.png", frame)
                        write_index_png(folder / f"mask{frame_id}.png", mask.astype(np.uint8) * 255)
                done += 1
                if stage is not None:
                    stage.update(done)
        summary = {"synthetic": True, "note": SYNTHETIC_NOTE, "patients": patients,
                   "frames_per_patient": frames_per_patient, "size": list(size), "seed": seed,
                   "frames_showing_structure": counts}
        write_synthetic_marker(tmp, SYNTHETIC_NOTE, "lap-demo-frames")
        (tmp / "dataset.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary
