"""The volumes the speed benchmarks segment, made from the shared data folder and cached in their scratch folder.

Three cases: a brain at 2 mm (80×96×112, the OASIS atlas and the vxm scan resampled over the same field of view), the
brain at its own 1 mm (160×192×224), and a 512×512×300 CT-like volume (the spine CT resampled, Hounsfield-like
int16, as CT usually is stored). ``one_header_brain``: the pair as the brain benchmark reads it. Used by
``benchmarks.speed_scale`` and ``benchmarks.gpu_check``.
"""

from __future__ import annotations

from pathlib import Path


def grid_like(shape, affine, new_shape):
    """A grid over the same field of view (outer voxel edges) with ``new_shape`` voxels: 160 -> 80 voxels of 1 mm
    gives exactly 2 mm voxels."""
    import numpy as np

    from distillseg.oneshot.geometry import Grid

    factors = np.array(shape, dtype=np.float64) / np.array(new_shape, dtype=np.float64)
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * factors
    # New voxel i sits at old voxel i·f + (f - 1)/2, so both grids cover the same box.
    new_affine[:3, 3] = affine[:3, :3] @ ((factors - 1) / 2) + affine[:3, 3]
    return Grid(tuple(int(s) for s in new_shape), new_affine)


def resampled(image_path: Path, labels_path: Path | None, new_shape, out_image: Path, out_labels: Path | None,
              to_hu: bool = False) -> None:
    """Resample a scan (linear) and its labels (per-label linear + argmax, the engine's own resampler)."""
    import nibabel as nib
    import numpy as np
    import torch

    from distillseg.oneshot.geometry import Grid, resample, resample_labels

    source = nib.load(image_path)
    src = Grid(source.shape[:3], source.affine)
    dst = grid_like(source.shape[:3], source.affine, new_shape)
    image = resample(torch.from_numpy(np.asarray(source.dataobj, dtype=np.float32))[None], src, dst)[0].numpy()
    if to_hu:  # the [0, 1] spine CT back to a Hounsfield-like range, stored as CT usually is
        image = np.rint(image * 2000.0 - 1000.0).astype(np.int16)
    nib.save(nib.Nifti1Image(image, dst.affine), out_image)
    if labels_path is not None:
        labels = np.rint(np.asarray(nib.load(labels_path).dataobj)).astype(np.int64)
        values = [int(v) for v in np.unique(labels)]
        classes = resample_labels(torch.from_numpy(labels), values, src, dst).numpy()
        nib.save(nib.Nifti1Image(np.asarray(values, dtype=np.int16)[classes], dst.affine), out_labels)


def brain_pair(data: Path) -> tuple[Path, Path, Path]:
    """The OASIS atlas, its seg35 labels and the vxm scan in the shared data folder."""
    brain = data / "brain"
    return (brain / "oasis_example_aligned_norm.nii.gz", brain / "oasis_example_aligned_seg35.nii.gz",
            brain / "vxm_test_scan_norm.nii.gz")


def one_header_brain(data: Path, folder: Path) -> tuple[Path, Path, Path, Path]:
    """(atlas, its seg35 labels, scan, the scan's FreeSurfer labels): the OASIS atlas as it is and the vxm scan and
    its aseg given the OASIS header — the two share one voxel grid and their headers disagree
    (``../shared/data/README.md``), so the brain benchmark reads them this way too."""
    import nibabel as nib
    import numpy as np

    oasis, seg35, vxm = brain_pair(data)
    scan, truth = folder / "vxm_oasis_header.nii.gz", folder / "vxm_aseg_oasis_header.nii.gz"
    if not truth.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        affine = nib.load(oasis).affine
        nib.save(nib.Nifti1Image(np.asarray(nib.load(vxm).dataobj, dtype=np.float32), affine), scan)
        aseg = np.rint(np.asarray(nib.load(vxm.with_name("vxm_test_scan_aseg.nii.gz")).dataobj)).astype(np.int16)
        nib.save(nib.Nifti1Image(aseg, affine), truth)
    return oasis, seg35, scan, truth


def prepare_cases(data: Path, work: Path) -> list[dict] | None:
    """The three segment cases: atlas, labels, unlabelled scan, scan to segment, training spacing, window."""
    oasis, seg35, vxm = brain_pair(data)
    spine = data / "spine_ct"
    if not oasis.is_file() or not spine.is_dir():
        return None
    folder = work / "data"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "vxm_2mm.nii.gz").is_file():
        resampled(oasis, seg35, (80, 96, 112), folder / "oasis_2mm.nii.gz", folder / "oasis_2mm_seg35.nii.gz")
        resampled(vxm, None, (80, 96, 112), folder / "vxm_2mm.nii.gz", None)
    if not (folder / "ct_512x512x300_labels.nii.gz").is_file():
        resampled(spine / "verse_spine_image704.nii.gz", spine / "verse_spine_label704.nii.gz", (512, 512, 300),
                  folder / "ct_512x512x300.nii.gz", folder / "ct_512x512x300_labels.nii.gz", to_hu=True)
    return [
        {"name": "brain 2 mm", "atlas": folder / "oasis_2mm.nii.gz", "labels": folder / "oasis_2mm_seg35.nii.gz",
         "unlabeled": folder / "vxm_2mm.nii.gz", "input": folder / "vxm_2mm.nii.gz", "spacing": "atlas",
         "window": (64, 64, 64), "budget": "1.5G"},
        {"name": "brain 1 mm", "atlas": oasis, "labels": seg35, "unlabeled": vxm, "input": vxm, "spacing": "atlas",
         "window": (96, 96, 96), "budget": "6G"},
        {"name": "CT 512×512×300", "atlas": folder / "ct_512x512x300.nii.gz",
         "labels": folder / "ct_512x512x300_labels.nii.gz", "unlabeled": folder / "ct_512x512x300.nii.gz",
         "input": folder / "ct_512x512x300.nii.gz", "spacing": "auto", "window": (96, 96, 96), "budget": "6G"},
    ]
