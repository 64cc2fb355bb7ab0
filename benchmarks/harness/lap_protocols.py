"""The two class-incremental protocols of ``benchmarks.lap_incremental`` and the data each one needs.

Neither is laparoscopic data. ``synthetic`` uses ``distillseg lap demo-data``; ``proxy`` writes real-pixel frames
in the engine's generic folder layout (``images/<patient>/*.png``, ``masks/<patient>/*.png``, ``labels.json``) from
the labelled volumes in ../shared/data: each frame is three neighbouring slices (2.5D) as R, G, B.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Iterations and learning rates chosen so that the whole benchmark fits ~1 hour on the 2-core development CPU.
# ``joint`` gets as many iterations as the base step and all incremental steps together.
_SYNTHETIC_SETTINGS = {"batch_size": 8, "base_iterations": 300, "step_iterations": 120, "joint_iterations": 660,
                       "diffusion_iterations": 150, "step_lr": 1e-3}
_PROXY_SETTINGS = {"batch_size": 8, "base_iterations": 200, "step_iterations": 100, "joint_iterations": 500,
                   "diffusion_iterations": 100, "step_lr": 1e-3}

PROTOCOLS = {
    "synthetic": {
        "description": "synthetic laparoscopic-looking scenes (DSAD layout), 128x160",
        "size": [128, 160],
        "frame_size": [144, 180],
        "patients": 16,
        "frames_per_patient": 20,
        "steps": [
            {"classes": ["liver", "stomach", "colon"], "patients": ["01", "02", "03", "04"]},
            {"classes": ["spleen"], "patients": ["05", "06", "07"]},
            {"classes": ["abdominal_wall"], "patients": ["08", "09", "10"]},
            {"classes": ["vesicular_glands"], "patients": ["11", "12", "13"]},
        ],
        "test_patients": ["14", "15", "16"],
        "eval_source": "multilabel",
        "settings": _SYNTHETIC_SETTINGS,
    },
    "proxy": {
        "description": "real-pixel proxy: 2.5D slices of brain MRI and spine CT, 96x128",
        "size": [96, 128],
        "steps": [
            {"classes": ["cerebral_white_matter", "cerebral_cortex", "lateral_ventricle"],
             "patients": ["group0"]},
            {"classes": ["vertebrae"], "patients": ["group1"]},
            {"classes": ["thalamus"], "patients": ["group2"]},
            {"classes": ["cerebellum"], "patients": ["group3"]},
        ],
        "test_patients": ["test"],
        "eval_source": "auto",
        "settings": _PROXY_SETTINGS,
    },
}

# Proxy structures as FreeSurfer IDs (left and right merged); vertebrae are all 12 VerSe labels.
_BRAIN_STRUCTURES = {
    "cerebral_white_matter": (2, 41), "cerebral_cortex": (3, 42), "lateral_ventricle": (4, 43),
    "thalamus": (10, 49), "cerebellum": (7, 8, 46, 47),
}
_PROXY_VALUES = {"cerebral_white_matter": 1, "cerebral_cortex": 2, "lateral_ventricle": 3, "vertebrae": 4,
                 "thalamus": 5, "cerebellum": 6}


SYNTHETIC_SEED = 2025  # the benchmark's scenes; settings are chosen on scenes of other seeds (lap_validation)


def build_synthetic_data(work: Path, protocol: dict, lap, seed: int = SYNTHETIC_SEED) -> Path:
    data = work / "demo"
    if not (data / "dataset.json").is_file():
        lap("demo-data", "--out", data, "--patients", protocol["patients"], "--frames-per-patient",
            protocol["frames_per_patient"], "--size", *protocol["frame_size"], "--seed", seed, "--progress", "none")
    return data


def _to_uint8(volume: np.ndarray) -> np.ndarray:
    """Intensities to 16..255 (percentiles 0.5-99.5): the lowest level stays above the black-border threshold, so
    the engine's endoscope-border crop leaves slices whole."""
    low, high = np.percentile(volume, [0.5, 99.5])
    scaled = np.clip((volume - low) / max(high - low, 1e-6), 0, 1)
    return (16 + scaled * 239).round().astype(np.uint8)


def _write(root: Path, patient: str, name: str, frame: np.ndarray, labels: np.ndarray) -> None:
    from distillseg.contract.frames import write_frame, write_index_png

    write_frame(root / "images" / patient / f"{name}.png", frame)
    write_index_png(root / "masks" / patient / f"{name}.png", labels)


def _slices(image: np.ndarray, labels: np.ndarray, axis: int, indices, gap: int):
    """(frame (H, W, 3), labels (H, W)) for each index: slices index-gap, index, index+gap as R, G, B."""
    for index in indices:
        channels = [np.take(image, min(max(index + d, 0), image.shape[axis] - 1), axis=axis)
                    for d in (-gap, 0, gap)]
        yield index, np.stack(channels, axis=-1), np.take(labels, index, axis=axis)


def build_proxy_data(work: Path, shared: Path) -> Path | None:
    """Frames of the proxy protocol, or None when ../shared/data is absent."""
    import nibabel as nib

    brain = shared / "brain"
    spine = shared / "spine_ct"
    if not (brain.is_dir() and spine.is_dir()):
        return None
    root = work / "proxy_frames"
    if (root / "labels.json").is_file():
        return root
    tables = json.loads((shared / "labels.json").read_text())
    seg35_to_fs = np.zeros(256, dtype=np.int64)
    for key, value in tables["oasis_seg35_to_freesurfer"].items():
        seg35_to_fs[int(key)] = int(value)

    def structures(freesurfer: np.ndarray) -> np.ndarray:
        out = np.zeros(freesurfer.shape, dtype=np.uint8)
        for name, ids in _BRAIN_STRUCTURES.items():
            out[np.isin(freesurfer, ids)] = _PROXY_VALUES[name]
        return out

    load = lambda p: np.asarray(nib.load(str(p)).dataobj)
    oasis = _to_uint8(load(brain / "oasis_example_aligned_norm.nii.gz").astype(np.float32))
    seg = np.round(load(brain / "oasis_example_aligned_seg35.nii.gz")).astype(np.int64)
    oasis_labels = structures(seg35_to_fs[seg])
    vxm = _to_uint8(load(brain / "vxm_test_scan_norm.nii.gz").astype(np.float32))
    vxm_labels = structures(np.round(load(brain / "vxm_test_scan_aseg.nii.gz")).astype(np.int64))
    # Axial slices (axis 1 = superior-inferior) that show brain: training subject in 4 interleaved groups, the
    # other subject is the test set.
    shown = np.flatnonzero((oasis_labels > 0).sum(axis=(0, 2)) > 400)
    for index, frame, labels in _slices(oasis, oasis_labels, 1, shown[::1], gap=2):
        _write(root, f"group{index % 4}", f"brain_{index:03d}", frame, labels)
    shown = np.flatnonzero((vxm_labels > 0).sum(axis=(0, 2)) > 400)
    for index, frame, labels in _slices(vxm, vxm_labels, 1, shown[::3], gap=2):
        _write(root, "test", f"brain_{index:03d}", frame, labels)
    # Spine: sagittal (axis 0) and coronal (axis 1) slices through the vertebrae; every fifth slice is held out.
    ct = _to_uint8(load(spine / "verse_spine_image704.nii.gz").astype(np.float32))
    vertebrae = (np.round(load(spine / "verse_spine_label704.nii.gz")) > 0).astype(np.uint8) * _PROXY_VALUES[
        "vertebrae"]
    for axis, tag in ((0, "sag"), (1, "cor")):
        shown = np.flatnonzero((vertebrae > 0).sum(axis=tuple(a for a in range(3) if a != axis)) > 150)
        for number, (index, frame, labels) in enumerate(_slices(ct, vertebrae, axis, shown, gap=1)):
            group = "test" if number % 5 == 4 else f"group{number % 4}"
            _write(root, group, f"spine_{tag}_{index:03d}", frame, labels)
    (root / "labels.json").write_text(json.dumps({str(v): k for k, v in _PROXY_VALUES.items()}, indent=1))
    (root / "README.txt").write_text("Real-pixel PROXY frames (not laparoscopic): 2.5D slices of brain MRI and spine "
                                     "CT from ../shared/data; research use under those data sets' terms.\n")
    return root
