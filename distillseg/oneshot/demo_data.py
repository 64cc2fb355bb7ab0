"""Built-in demo data: a brain atlas with tissue labels made from nilearn's MNI152 template, and synthetic
"subjects" made from it by random smooth deformations, head motion and intensity changes.

SYNTHETIC: the subjects are not real people. They are the MNI152 2009 template deformed and re-contrasted, which is
enough to show the whole one-shot workflow on real anatomy without downloading anything (nilearn ships the
template). Labels: 1 grey matter, 2 white matter, 3 cerebrospinal fluid (argmax of the template's tissue maps inside
its brain mask).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from distillseg.common.volume_io import write_image, write_labels
from distillseg.contract.atomic import atomic_directory
from distillseg.contract.errors import UserError
from distillseg.contract.frames import synthetic_folder, write_synthetic_marker
from distillseg.contract.labels import LabelEntry, LabelTable

# Okabe-Ito colours, distinct for colour-blind readers and readable on a grey T1 (the white matter's former cream
# vanished on the bright white matter it overlays).
TISSUES = LabelTable([
    LabelEntry(1, "grey matter", (230, 159, 0)),
    LabelEntry(2, "white matter", (0, 114, 178)),
    LabelEntry(3, "cerebrospinal fluid", (0, 158, 115)),
])
DEMO_DATA = synthetic_folder("a folder of OneShotSeg demo data", "oneshot-demo-data")
NOTICE = ("SYNTHETIC demo data: subjects are nilearn's MNI152 template with random smooth deformations, head motion "
          "and intensity changes, not real people.")


def _template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T1 image, tissue labels, affine) of the MNI152 template at 1 mm."""
    try:
        from nilearn import datasets
    except ImportError:
        raise UserError("The demo needs nilearn (pip install nilearn), which ships the MNI152 template.") from None
    t1 = datasets.load_mni152_template(resolution=1)
    grey = datasets.load_mni152_gm_template(resolution=1).get_fdata()
    white = datasets.load_mni152_wm_template(resolution=1).get_fdata()
    mask = datasets.load_mni152_brain_mask(resolution=1).get_fdata() > 0.5
    csf = np.clip(1.0 - grey - white, 0.0, 1.0)
    labels = (np.argmax(np.stack([grey, white, csf]), axis=0) + 1) * mask
    return t1.get_fdata().astype(np.float32), labels.astype(np.int16), t1.affine


def _random_subject(image: np.ndarray, labels: np.ndarray, affine: np.ndarray, rng: np.random.Generator,
                    amplitude_mm: float = 5.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth random deformation, a head motion in the header and a new contrast."""
    from scipy.ndimage import gaussian_filter, map_coordinates, zoom
    from scipy.spatial.transform import Rotation

    coarse = [gaussian_filter(rng.normal(size=[max(2, s // 8) for s in image.shape]), 1.5) for _ in range(3)]
    field = [zoom(c / (np.abs(c).max() + 1e-6) * amplitude_mm, np.array(image.shape) / np.array(c.shape), order=1)
             for c in coarse]
    coordinates = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in image.shape], indexing="ij")
    warped = [c + f[: c.shape[0], : c.shape[1], : c.shape[2]] for c, f in zip(coordinates, field)]
    new_image = map_coordinates(image, warped, order=1, mode="constant")
    new_labels = map_coordinates(labels, warped, order=0, mode="constant")
    # Contrast: gamma, a smooth multiplicative bias field and noise.
    bias = zoom(gaussian_filter(rng.normal(size=(4, 4, 4)), 1.0), np.array(image.shape) / 4, order=1)
    bias = np.exp(0.15 * bias[: image.shape[0], : image.shape[1], : image.shape[2]] / (np.abs(bias).max() + 1e-6))
    new_image = np.clip(new_image, 0, None) ** rng.uniform(0.8, 1.25) * bias * rng.uniform(0.8, 1.2)
    new_image = new_image + rng.normal(0, 0.01 * float(new_image.max()), image.shape)
    motion = np.eye(4)
    motion[:3, :3] = Rotation.from_rotvec(np.deg2rad(rng.uniform(-8, 8, 3))).as_matrix()
    motion[:3, 3] = rng.uniform(-10, 10, 3)
    return new_image.astype(np.float32), new_labels.astype(np.int16), motion @ affine


def make_demo_data(out: str | Path, unlabeled: int = 4, test: int = 2, seed: int = 0) -> dict:
    """Write ``atlas.nii.gz``, ``atlas_labels.nii.gz``, ``labels.json``, ``unlabeled/*.nii.gz`` and
    ``test/*.nii.gz`` with ``test/*_labels.nii.gz`` as the folder ``out`` (atomically; it may replace only an
    earlier demo folder); return their paths."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    image, labels, affine = _template()
    names = {"atlas": "atlas.nii.gz", "atlas_labels": "atlas_labels.nii.gz", "label_names": "labels.json",
             "unlabeled": [], "test": [], "test_labels": []}
    with atomic_directory(out, DEMO_DATA) as tmp:
        write_image(tmp / names["atlas"], image, affine)
        write_labels(tmp / names["atlas_labels"], labels, affine)
        (tmp / names["label_names"]).write_text(json.dumps(TISSUES.to_json(), indent=1) + "\n", encoding="utf-8")
        for index in range(unlabeled + test):
            subject, subject_labels, subject_affine = _random_subject(image, labels, affine, rng)
            if index < unlabeled:
                names["unlabeled"].append(f"unlabeled/subject{index:02d}.nii.gz")
                write_image(tmp / names["unlabeled"][-1], subject, subject_affine)
            else:
                name = f"test/test{index - unlabeled:02d}"
                names["test"].append(f"{name}.nii.gz")
                names["test_labels"].append(f"{name}_labels.nii.gz")
                write_image(tmp / names["test"][-1], subject, subject_affine)
                write_labels(tmp / names["test_labels"][-1], subject_labels, subject_affine)
        (tmp / "README.txt").write_text(NOTICE + "\n", encoding="utf-8")
        write_synthetic_marker(tmp, NOTICE, "oneshot-demo-data")
    return {key: [out / n for n in value] if isinstance(value, list) else out / value for key, value in names.items()}
