"""Small synthetic 3D cases for engine and glue tests: ellipsoid "organs" in a noisy body, written to disk.

``write_case(folder)`` writes an atlas image + labels and unlabelled scans that are smoothly deformed, shifted and
re-contrasted copies, each with its true labels, so tests can train, segment and score without real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from distillseg.common.volume_io import write_image, write_labels


def phantom(shape=(32, 32, 32), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in ~[0, 1], labels int) with a body (no label) and three ellipsoids labelled 1, 2, 5."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"), axis=-1)
    body = (grid ** 2 / np.array([0.85, 0.8, 0.9]) ** 2).sum(-1) < 1
    labels = np.zeros(shape, np.int16)
    image = np.where(body, 0.3, 0.0)
    for value, centre, radii, intensity in ((1, (-0.35, -0.2, 0.0), (0.3, 0.35, 0.4), 0.8),
                                            (2, (0.35, 0.1, -0.1), (0.25, 0.3, 0.3), 0.55),
                                            (5, (0.0, 0.45, 0.35), (0.18, 0.15, 0.2), 1.0)):
        inside = (((grid - np.array(centre)) / np.array(radii)) ** 2).sum(-1) < 1
        labels[inside] = value
        image = np.where(inside, intensity, image)
    image = gaussian_filter(image, 0.7) + rng.normal(0, 0.02, shape)
    return image.astype(np.float32), labels


def deform(image: np.ndarray, labels: np.ndarray, seed: int, strength: float = 2.0
           ) -> tuple[np.ndarray, np.ndarray]:
    """A smooth random deformation (voxels), shift and contrast change of a phantom."""
    rng = np.random.default_rng(seed)
    shape = image.shape
    field = [gaussian_filter(rng.normal(0, 1, shape), 5) for _ in range(3)]
    field = [f / (np.abs(f).max() + 1e-6) * strength + rng.uniform(-1.5, 1.5) for f in field]
    coords = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    warped = [c + f for c, f in zip(coords, field)]
    new_image = map_coordinates(image, warped, order=1, mode="nearest")
    new_labels = map_coordinates(labels, warped, order=0, mode="nearest")
    gamma = rng.uniform(0.8, 1.25)
    new_image = np.clip(new_image, 0, None) ** gamma * rng.uniform(0.9, 1.1)
    return new_image.astype(np.float32), new_labels.astype(np.int16)


def write_case(folder: Path, shape=(32, 32, 32), unlabeled: int = 2, affine: np.ndarray | None = None,
               suffix: str = ".nii.gz") -> dict:
    """Write atlas.nii.gz, atlas_labels.nii.gz, scanN.nii.gz and scanN_labels.nii.gz; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    affine = np.diag([1.5, 1.5, 2.0, 1.0]) if affine is None else affine
    image, labels = phantom(shape)
    case = {"atlas": write_image(folder / f"atlas{suffix}", image, affine),
            "atlas_labels": write_labels(folder / f"atlas_labels{suffix}", labels, affine),
            "scans": [], "scan_labels": []}
    for index in range(unlabeled):
        scan, scan_labels = deform(image, labels, seed=index + 1)
        case["scans"].append(write_image(folder / f"scan{index}{suffix}", scan, affine))
        case["scan_labels"].append(write_labels(folder / f"scan{index}_labels{suffix}", scan_labels, affine))
    return case
