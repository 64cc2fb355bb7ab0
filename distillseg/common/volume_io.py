"""Reading and writing 3D volumes (NIfTI, NRRD, Slicer ``.seg.nrrd``) with their exact voxel-to-world geometry.

Convention used throughout the engine: ``array`` is indexed ``[i, j, k]`` (the file's own axis order, fastest axis
first) and ``affine`` is the 4x4 matrix from voxel index ``(i, j, k, 1)`` to **RAS** world millimetres (nibabel's
convention). NRRD files in LPS space are converted on read and written back in LPS, as Slicer does. Label maps are
always written on the exact grid they are given (shape, spacing, origin, direction), atomically.

A NIfTI header can hold two voxel-to-world matrices, the qform and the sform, and readers differ in which one they
believe when both are set (3D Slicer/ITK takes the qform unless the sform's code is 1 "scanner"; nibabel and FSL take
the sform). So the engine places a NIfTI image where every reader agrees: with the one matrix that is set; with
either when both are set and agree to ``QFORM_SFORM_TOLERANCE_MM`` at every corner of the volume; and when neither
is set, as ITK does (the header's voxel sizes along the LPS axes, origin 0). A file whose qform and sform disagree
is refused: a segmentation placed by the wrong one would land millimetres off. Written files set both to the same
matrix.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distillseg.contract.atomic import atomic_file
from distillseg.contract.errors import check_readable_file, file_error
from distillseg.contract.labels import LabelEntry, LabelTable

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr", ".seg.nrrd")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
MAX_LABEL_VALUE = 65535
QFORM_SFORM_TOLERANCE_MM = 0.01  # far above float32 rounding of either matrix, far below any voxel size


@dataclass
class Volume:
    """A 3D image or label map with its geometry.

    ``array``: (I, J, K) voxels in file order; ``affine``: (4, 4) voxel -> RAS mm; ``labels``: the segment table a
    ``.seg.nrrd`` carried (names, colours, terminology), else None.
    """

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    labels: LabelTable | None = field(default=None)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.array.shape[:3])

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size along i, j, k in mm."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)


def volume_format(path: str | os.PathLike) -> str:
    """``nifti`` or ``nrrd`` (``.seg.nrrd`` included) from the file name, else a ``UserError``."""
    name = str(path).lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(NRRD_SUFFIXES):
        return "nrrd"
    raise file_error(path, "unsupported file type; use NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .seg.nrrd)")


def same_grid(a: Volume, b: Volume, tolerance_mm: float = 1e-3) -> bool:
    """True when both volumes have the same shape and the same voxel-to-world matrix (to ``tolerance_mm``)."""
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=tolerance_mm)


# ----------------------------------------------------------------------------------------------------- reading
def _read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, LabelTable | None]:
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except (nib.filebasedimages.ImageFileError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise file_error(path, f"cannot be read as NIfTI (truncated or not an image: {exc.__class__.__name__})") \
            from None
    if data.dtype.names:  # NIfTI RGB(A) voxel types are structured arrays
        raise file_error(path, "is an RGB volume; a single-channel (grayscale) 3D scan is needed")
    return data, _nifti_affine(path, image.header, data.shape[:3]), None


def _nifti_affine(path: Path, header, shape: tuple[int, ...]) -> np.ndarray:
    """The voxel -> RAS matrix every reader agrees on (see the module docstring), else a ``UserError``."""
    qform, _ = header.get_qform(coded=True)
    sform, _ = header.get_sform(coded=True)
    if qform is not None and sform is not None:
        last = [s - 1 for s in shape] + [0] * (3 - len(shape))
        corners = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]).T
        gap = float(np.linalg.norm(((sform - qform) @ corners)[:3], axis=0).max())
        if gap > QFORM_SFORM_TOLERANCE_MM:
            raise file_error(path, f"its NIfTI qform and sform disagree by up to {gap:.3g} mm, so programs place "
                                   "this image differently; make them equal (for example with fslorient "
                                   "-copysform2qform) and try again")
    chosen = sform if sform is not None else qform
    if chosen is None:
        zooms = [float(z) for z in header.get_zooms()[:3]] + [1.0] * 3
        chosen = LPS_TO_RAS @ np.diag([*zooms[:3], 1.0])
    return np.asarray(chosen, dtype=np.float64)


def _nrrd_affine(path: Path, header: dict, spatial_axes: list[int]) -> np.ndarray:
    directions = header.get("space directions")
    affine = np.eye(4)
    if directions is not None:
        directions = np.asarray(directions, dtype=np.float64)
        affine[:3, :3] = directions[spatial_axes].T
    else:  # no orientation in the file: spacings along the axes
        spacings = np.asarray(header.get("spacings", [1.0] * len(spatial_axes)), dtype=np.float64)
        affine[:3, :3] = np.diag(np.nan_to_num(spacings[spatial_axes], nan=1.0))
    origin = header.get("space origin")
    if origin is not None:
        affine[:3, 3] = np.asarray(origin, dtype=np.float64)
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps", "scanner-xyz"):
        affine = LPS_TO_RAS @ affine
    elif space not in ("right-anterior-superior", "ras"):
        raise file_error(path, f"NRRD space '{space}' is not supported (use RAS or LPS)")
    return affine


def _segments_from_header(header: dict) -> tuple[LabelTable | None, dict[int, tuple[int, int]]]:
    """Segment table of a ``.seg.nrrd`` header and, per output value, the (layer, value) it is stored at.

    A single-layer file keeps its label values; segments spread over several layers (overlapping segments) get
    values 1..N in segment order, since one label map cannot hold their overlap.
    """
    segments = []
    index = 0
    while f"Segment{index}_Name" in header:
        key = f"Segment{index}_"
        color = tuple(int(round(float(c) * 255)) for c in str(header.get(key + "Color", "0.5 0.5 0.5")).split()[:3])
        terminology = None
        for tag in str(header.get(key + "Tags", "")).split("|"):
            if tag.startswith("TerminologyEntry:"):
                terminology = tag[len("TerminologyEntry:"):]
        segments.append((str(header[key + "Name"]), color, terminology,
                         int(header.get(key + "Layer", 0)), int(header.get(key + "LabelValue", index + 1))))
        index += 1
    if not segments:
        return None, {}
    stored = [(layer, value) for *_, layer, value in segments]
    keep_values = len({layer for layer, _ in stored}) == 1 and len({v for _, v in stored}) == len(stored)
    entries, where = [], {}
    for number, (name, color, terminology, layer, value) in enumerate(segments, 1):
        out_value = value if keep_values else number
        entries.append(LabelEntry(out_value, name, color, terminology))
        where[out_value] = (layer, value)
    return LabelTable(entries), where


def _read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, LabelTable | None]:
    import nrrd

    try:
        data, header = nrrd.read(str(path))
    except (nrrd.NRRDError, EOFError, zlib.error, OSError, ValueError, KeyError) as exc:
        raise file_error(path, f"cannot be read as NRRD (truncated or not an image: {exc.__class__.__name__})") \
            from None
    directions = header.get("space directions")
    if directions is not None:
        spatial_axes = [a for a, row in enumerate(np.asarray(directions, dtype=np.float64))
                        if np.all(np.isfinite(row))]
    else:
        spatial_axes = list(range(data.ndim))
    non_spatial = [a for a in range(data.ndim) if a not in spatial_axes]
    affine = _nrrd_affine(path, header, spatial_axes)
    table, where = _segments_from_header(header)
    if table is not None:
        # Slicer segmentation: possibly several layers along a non-spatial axis; each segment is (layer, value).
        layers = np.moveaxis(data, non_spatial, -1).reshape(*[data.shape[a] for a in spatial_axes], -1) \
            if non_spatial else data[..., None]
        labels = np.zeros(layers.shape[:3], dtype=np.int32)
        for segment_value, (layer, value) in where.items():
            labels[layers[..., layer] == value] = segment_value
        return labels, affine, table
    if non_spatial:
        data = np.moveaxis(data, non_spatial, -1)
    return data, affine, None


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a NIfTI or NRRD file as a ``Volume``; unreadable files raise a ``UserError`` naming the file."""
    path = Path(path)
    kind = volume_format(path)
    check_readable_file(path)
    data, affine, table = _read_nifti(path) if kind == "nifti" else _read_nrrd(path)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise file_error(path, "has an invalid (singular or non-finite) voxel-to-world matrix")
    return Volume(array=data, affine=affine, path=path, labels=table)


def _squeeze_to_3d(volume: Volume, role: str) -> np.ndarray:
    array = volume.array
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        extra = "an RGB/vector volume" if array.ndim == 4 and array.shape[-1] in (3, 4) else f"{array.ndim}-D"
        raise file_error(volume.path, f"is {extra}; a 3D {role} is needed")
    if min(array.shape) < 2:
        raise file_error(volume.path, f"is a single slice ({'x'.join(map(str, array.shape))}); a 3D {role} is needed")
    return array


def read_image(path: str | os.PathLike) -> Volume:
    """A 3D scalar intensity image as float32; NaN/inf voxels and non-3D files are refused."""
    volume = read_volume(path)
    array = _squeeze_to_3d(volume, "scan")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise file_error(path, f"has voxel type {array.dtype}, not a real-valued intensity")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise file_error(path, "contains NaN or infinite intensities")
    volume.array = array
    return volume


def read_labels(path: str | os.PathLike) -> Volume:
    """A 3D label map as int32 (0 = background); non-integer or out-of-range values are refused."""
    volume = read_volume(path)
    array = _squeeze_to_3d(volume, "label map")
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise file_error(path, "label map contains NaN or infinite values")
        rounded = np.rint(array)
        if np.any(np.abs(array - rounded) > 1e-3):
            raise file_error(path, "label map has non-integer values (is it an intensity image?)")
        array = rounded
    elif not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise file_error(path, f"label map has voxel type {array.dtype}, not integers")
    if array.size and (array.min() < 0 or array.max() > MAX_LABEL_VALUE):
        raise file_error(path, f"label values must lie in 0..{MAX_LABEL_VALUE}, found {array.min():g}..{array.max():g}")
    volume.array = array.astype(np.int32)
    return volume


# ----------------------------------------------------------------------------------------------------- writing
def _label_dtype(array: np.ndarray) -> type:
    return np.uint8 if array.max(initial=0) <= 255 else np.uint16


def _nrrd_header(affine: np.ndarray, shape: tuple[int, ...]) -> dict:
    lps = LPS_TO_RAS @ affine  # RAS -> LPS flips x and y of the directions and the origin
    return {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T.copy(),
        "space origin": lps[:3, 3].copy(),
        "kinds": ["domain"] * len(shape),
        "encoding": "gzip",
    }


def _seg_nrrd_fields(labels: np.ndarray, table: LabelTable) -> dict:
    """Header fields that make Slicer load a label map as a segmentation with names, colours and terminology."""
    extent = " ".join(f"0 {s - 1}" for s in labels.shape)
    fields = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for index, entry in enumerate(table.entries):
        key = f"Segment{index}_"
        tags = f"TerminologyEntry:{entry.terminology}|" if entry.terminology else "|"
        fields.update({
            key + "ID": f"Segment_{entry.value}",
            key + "Name": entry.name,
            key + "NameAutoGenerated": "0",
            key + "Color": " ".join(f"{c / 255:.6g}" for c in entry.color),
            key + "ColorAutoGenerated": "0",
            key + "LabelValue": str(entry.value),
            key + "Layer": "0",
            key + "Extent": extent,
            key + "Tags": tags,
        })
    return fields


def write_labels(path: str | os.PathLike, labels: np.ndarray, affine: np.ndarray,
                 table: LabelTable | None = None) -> Path:
    """Write an (I, J, K) label map on the grid ``affine`` (voxel -> RAS); format from the suffix; atomic.

    ``.seg.nrrd`` files carry the segment names, colours and terminology of ``table`` (defaults if None).
    """
    path = Path(path)
    kind = volume_format(path)
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL_VALUE):
        raise ValueError("label values must lie in 0..65535")
    data = labels.astype(_label_dtype(labels))
    with atomic_file(path) as tmp:
        if kind == "nifti":
            import nibabel as nib

            image = nib.Nifti1Image(data, affine)
            image.set_qform(affine, code=1)
            image.set_sform(affine, code=1)
            nib.save(image, str(tmp))
        else:
            import nrrd

            header = _nrrd_header(affine, data.shape)
            if path.name.lower().endswith(".seg.nrrd"):
                present = [int(v) for v in np.unique(data) if v != 0]
                header.update(_seg_nrrd_fields(data, (table or LabelTable()).restricted_to(
                    sorted(set(present) | set((table or LabelTable()).values)))))
            nrrd.write(str(tmp), data, header, index_order="F")
    return path


def write_image(path: str | os.PathLike, image: np.ndarray, affine: np.ndarray) -> Path:
    """Write an (I, J, K) float image on the grid ``affine``; format from the suffix; atomic."""
    path = Path(path)
    kind = volume_format(path)
    data = np.asarray(image, dtype=np.float32)
    with atomic_file(path) as tmp:
        if kind == "nifti":
            import nibabel as nib

            nifti = nib.Nifti1Image(data, affine)
            nifti.set_qform(affine, code=1)
            nifti.set_sform(affine, code=1)
            nib.save(nifti, str(tmp))
        else:
            import nrrd

            nrrd.write(str(tmp), data, _nrrd_header(affine, data.shape), index_order="F")
    return path
