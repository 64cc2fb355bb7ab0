"""A folder holding a DICOM series in: (I, J, K) voxels and their voxel -> RAS affine, read with pydicom.

Works with pydicom 2.4 (what Slicer <= 5.10 ships) and 3.x. The folder is searched recursively; hidden files and
``DICOMDIR`` are skipped, DICOM objects without pixel data (reports, presentation states) are ignored, any other
file is refused (a folder of mixed files is not guessed at). Its images are grouped by ``SeriesInstanceUID``: with
several series, ``--series-uid`` picks one (UIDs are unique worldwide, so one list of UIDs serves every folder of a
command), else the sentence lists them.

Geometry, in the engine's convention (``volume_io``): ``i`` runs along a row (DICOM column index, direction
``ImageOrientationPatient[:3]``, spacing ``PixelSpacing[1]``), ``j`` down the columns (``IOP[3:]``,
``PixelSpacing[0]``), ``k`` over the slices sorted along the normal ``IOP[:3] x IOP[3:]``. The third affine column
is the step between slice positions, so oblique series keep their rotation exactly; DICOM's patient space is LPS
and is flipped to RAS. A series is read only when every slice lies on that grid to ``GRID_TOLERANCE_VOXELS`` of a
voxel: gantry tilt (a step that is not along the normal), unequal spacing, missing slices, two slices at one
position, mixed orientations or sizes are refused in one sentence naming the folder. Voxels are the modality
values (``RescaleSlope``/``RescaleIntercept`` applied, per slice) as float32.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillseg.common.volume_readers import LPS_TO_RAS, check_declared_size
from distillseg.contract.errors import OutOfMemoryError, file_error

GRID_TOLERANCE_VOXELS = 0.05  # as volume_io.GRID_TOLERANCE_VOXELS: how far a slice may lie off the regular grid
_ORIENTATION_TOLERANCE = 1e-4  # direction cosines are written with ~6-16 digits
_SKIPPED_NAMES = ("DICOMDIR",)
_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")


@dataclass
class Series:
    """One series of a folder, checked and sorted: ``headers`` (pydicom datasets without pixel data, in slice
    order k = 0..K-1), ``files`` (their paths), ``shape`` (I, J, K), ``affine`` (4, 4) voxel -> RAS mm."""

    folder: Path
    uid: str
    headers: list
    files: list[Path]
    shape: tuple[int, int, int]
    affine: np.ndarray


def _pydicom():
    import pydicom
    import pydicom.errors

    return pydicom


def _scan(folder: Path) -> dict[str, list[tuple[Path, object]]]:
    """Image headers of every DICOM file under ``folder``, grouped by SeriesInstanceUID (files in name order)."""
    pydicom = _pydicom()
    series: dict[str, list[tuple[Path, object]]] = {}
    others = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith(".") or path.name.upper() in _SKIPPED_NAMES:
            continue
        try:
            header = pydicom.dcmread(str(path), stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
            raise file_error(folder, f"holds {path.relative_to(folder)}, which is not a DICOM file "
                                     f"({exc.__class__.__name__}); give a folder that holds only the series' "
                                     "DICOM files") from None
        if "Rows" not in header:
            others += 1  # a report, key object or presentation state: no image
            continue
        series.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if not series:
        found = f"holds {others} DICOM files without images" if others else "holds no DICOM files"
        raise file_error(folder, f"is a folder that {found}; give a NIfTI or NRRD file, or a folder holding one "
                                 "DICOM image series")
    return series


def _series_list(series: dict) -> str:
    def one(uid, items):
        description = str(items[0][1].get("SeriesDescription", "")).strip() or "no description"
        return f"{uid} ('{description}', {len(items)} slices)"

    return ", ".join(one(uid, items) for uid, items in series.items())


def _choose(folder: Path, series: dict, wanted) -> tuple[str, list]:
    chosen = [uid for uid in series if uid in set(wanted or ())]
    if len(chosen) == 1:
        return chosen[0], series[chosen[0]]
    if len(series) == 1:
        return next(iter(series.items()))
    asked = f"; none of them is --series-uid {' '.join(wanted)}" if wanted else ""
    raise file_error(folder, f"holds {len(series)} DICOM series: {_series_list(series)}{asked}; choose one with "
                             "--series-uid UID")


def _vector(header, name: str, size: int) -> np.ndarray:
    values = np.asarray([float(v) for v in header[name].value], dtype=np.float64)
    if values.shape != (size,) or not np.all(np.isfinite(values)):
        raise ValueError(name)
    return values


def _check_planes(folder: Path, items: list) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(row/column direction cosines (2, 3), in-plane spacing (along i, along j) in mm, (rows, columns)), the same
    for every slice, else ``UserError``."""
    planes = set()
    try:
        orientations = [_vector(h, "ImageOrientationPatient", 6) for _, h in items]
        spacings = [_vector(h, "PixelSpacing", 2)[::-1] for _, h in items]
        sizes = {(int(h.Rows), int(h.Columns)) for _, h in items}
        planes = {(int(h.get("SamplesPerPixel", 1)), int(h.get("NumberOfFrames", 1) or 1)) for _, h in items}
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        missing = [name for name in _GEOMETRY if any(name not in h for _, h in items)]
        what = ", ".join(missing) if missing else str(exc)
        raise file_error(folder, f"its DICOM images lack a valid {what}, so their place in space is unknown") \
            from None
    if any(samples != 1 for samples, _ in planes):
        raise file_error(folder, "holds colour (RGB) DICOM images; a single-channel (grayscale) 3D scan is needed")
    if any(frames != 1 for _, frames in planes):
        raise file_error(folder, "holds a multi-frame (enhanced) DICOM image; only series of single-frame images "
                                 "are read (convert it, for example with dcm2niix)")
    if len(sizes) > 1:
        raise file_error(folder, "its DICOM series mixes image sizes ("
                                 + ", ".join(f"{r}x{c}" for r, c in sorted(sizes)) + "); give one series of one size")
    if np.ptp(orientations, axis=0).max() > _ORIENTATION_TOLERANCE:
        raise file_error(folder, "its DICOM series mixes slice orientations (a localizer among the slices?); give "
                                 "a series of parallel slices")
    if np.ptp(spacings, axis=0).max() > _ORIENTATION_TOLERANCE or min(spacings[0]) <= 0:
        raise file_error(folder, "its DICOM slices have different or invalid pixel spacings")
    return orientations[0].reshape(2, 3), spacings[0], sizes.pop()


def _slice_step(folder: Path, positions: np.ndarray, normal: np.ndarray, pixel: float) -> np.ndarray:
    """The step between sorted slice positions (3,) in LPS mm, when every slice lies on the regular grid it
    makes; else ``UserError`` saying why (tilt, duplicate, missing or unequally spaced slices)."""
    along = positions @ normal
    gaps = np.diff(along)
    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    tolerance = GRID_TOLERANCE_VOXELS * min(pixel, abs(float(step @ normal)) or pixel)
    if gaps.min() <= tolerance:
        count = int(np.sum(gaps <= tolerance)) + 1
        raise file_error(folder, f"its DICOM series has {count} slices at one position (several acquisitions, "
                                 "echoes or time points in one series); give a series of one volume")
    # A tilted series is a regular but sheared grid: the engine's resampling and Slicer's readers would place it
    # differently, so it is refused rather than guessed at.
    shear = np.linalg.norm(step - (step @ normal) * normal)
    if shear * (len(positions) - 1) > tolerance:
        angle = np.degrees(np.arctan2(shear, abs(step @ normal)))
        raise file_error(folder, f"is a gantry-tilted DICOM series (slices shifted {angle:.2g} degrees off their "
                                 "normal); resample it to an untilted grid first, for example with dcm2niix or "
                                 "Slicer's DICOM import with acquisition geometry regularization")
    off_grid = positions - positions[0] - np.arange(len(positions))[:, None] * step
    if np.linalg.norm(off_grid, axis=1).max() <= tolerance:
        return step
    smallest = float(gaps.min())
    multiples = gaps / smallest
    if np.all(np.abs(multiples - np.rint(multiples)) * smallest <= tolerance):
        missing = int(np.rint(multiples).sum() - len(gaps))
        where = float(along[int(np.argmax(multiples))])
        raise file_error(folder, f"its DICOM series misses {missing} slice{'s' if missing > 1 else ''} (a gap at "
                                 f"{where:.4g} mm where slices lie {smallest:.4g} mm apart); give the complete "
                                 "series")
    raise file_error(folder, f"its DICOM slices are unequally spaced ({smallest:.4g} to {gaps.max():.4g} mm "
                             "apart); give a series with one slice spacing")


def find_series(folder: str | os.PathLike, series_uids=()) -> Series:
    """The series of ``folder`` to read (see the module docstring), checked and sorted; voxels are not read."""
    folder = Path(folder)
    uid, items = _choose(folder, _scan(folder), series_uids)
    directions, spacing, (rows, columns) = _check_planes(folder, items)
    if len(items) < 2:
        raise file_error(folder, "its DICOM series is a single slice; a 3D scan is needed")
    normal = np.cross(directions[0], directions[1])
    positions = np.array([_vector(h, "ImagePositionPatient", 3) for _, h in items])
    order = np.argsort(positions @ normal, kind="stable")
    positions = positions[order]
    step = _slice_step(folder, positions, normal, float(spacing.min()))
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3] = directions[0] * spacing[0], directions[1] * spacing[1], step, \
        positions[0]
    items = [items[i] for i in order]
    shape = (columns, rows, len(items))
    check_declared_size(folder, shape, 4)
    return Series(folder, uid, [h for _, h in items], [p for p, _ in items], shape, LPS_TO_RAS @ lps)


def _modality_lut():
    try:
        from pydicom.pixels import apply_modality_lut  # pydicom >= 3
    except ImportError:
        from pydicom.pixel_data_handlers.util import apply_modality_lut  # pydicom 2.4 (Slicer <= 5.10)
    return apply_modality_lut


def _pixels(folder: Path, path: Path) -> tuple[object, np.ndarray]:
    """(the slice's dataset, its stored values (rows, columns)), or ``UserError`` naming the folder and the
    file."""
    pydicom = _pydicom()
    dataset = pydicom.dcmread(str(path))
    try:
        return dataset, dataset.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, TypeError) as exc:
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and syntax.is_compressed:
            raise file_error(folder, f"its DICOM images are compressed as {syntax.name} and no installed decoder "
                                     f"reads them (first in {path.relative_to(folder)}); install one (pip "
                                     "install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg) or give an "
                                     "uncompressed copy of the series") from None
        raise file_error(folder, f"the pixel data of {path.relative_to(folder)} cannot be decoded "
                                 f"({exc.__class__.__name__})") from None


def read_series(folder: str | os.PathLike, series_uids=()) -> tuple[np.ndarray, np.ndarray, Series]:
    """(voxels (I, J, K) float32 modality values, voxel -> RAS affine (4, 4), the ``Series`` read)."""
    series = find_series(folder, series_uids)
    apply_modality_lut = _modality_lut()
    data = np.empty(series.shape, dtype=np.float32)
    try:
        for k, path in enumerate(series.files):
            dataset, stored = _pixels(series.folder, path)
            # (rows, columns) -> (columns = i, rows = j): i runs along a row, as the affine says.
            data[:, :, k] = np.asarray(apply_modality_lut(stored, dataset), dtype=np.float32).T
    except MemoryError:
        raise OutOfMemoryError(f"{series.folder}: reading the DICOM series ran out of memory; close other programs "
                               "or use a computer with more memory.") from None
    return data, series.affine, series


def series_sha256(folder: str | os.PathLike, series_uids=()) -> str:
    """SHA-256 of the series' files, in slice order: what identifies a DICOM input by content (its file names
    are not part of it)."""
    digest = hashlib.sha256()
    for path in find_series(folder, series_uids).files:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
