"""NIfTI and NRRD files to (array, voxel -> RAS affine, segment table), trusting their headers only after checking
them (``distillseg.common.volume_io`` is the public side: ``read_volume`` and the ``Volume`` conventions).

A header is checked before the voxels are read: its grid must fit in the memory available (a header can claim a
30000³ grid in a 400-byte file), and a NRRD's space must be 3-dimensional with three spatial axes (2 or 4 space
dimensions used to end in a numpy broadcast error). Running out of memory while reading still names the file.

A NIfTI header can hold two voxel-to-world matrices, the qform and the sform, and readers differ in which one they
believe when both are set (3D Slicer/ITK takes the qform unless the sform's code is 1 "scanner"; nibabel and FSL take
the sform). So the engine places a NIfTI image where every reader agrees: with the one matrix that is set; with
either when both are set and agree to ``QFORM_SFORM_TOLERANCE_MM`` at every corner of the volume; and when neither
is set, as ITK does (the header's voxel sizes along the LPS axes, origin 0). A file whose qform and sform disagree
is refused: a segmentation placed by the wrong one would land millimetres off.
"""

from __future__ import annotations

import contextlib
import zlib
from pathlib import Path

import numpy as np

from distillseg.common.memory import human, system_available_bytes
from distillseg.contract.errors import OutOfMemoryError, file_error
from distillseg.contract.labels import LabelEntry, LabelTable

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
QFORM_SFORM_TOLERANCE_MM = 0.01  # far above float32 rounding of either matrix, far below any voxel size
_NRRD_TYPES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
               "float": 4, "double": 8, "block": 1}


def check_declared_size(path: Path, shape, item_bytes: int) -> None:
    """Refuse a header whose grid (``shape`` of ``item_bytes``-sized voxels) would not fit the memory available,
    naming the file (``OutOfMemoryError``, exit 3) before anything is allocated."""
    needed = int(np.prod([int(s) for s in shape], dtype=np.float64) * item_bytes)
    available = system_available_bytes()
    if needed > available:
        raise OutOfMemoryError(f"{path}: its header declares a {'x'.join(str(int(s)) for s in shape)} grid "
                               f"({human(needed)}), more than the {human(available)} of memory available; the file "
                               "is damaged, or the scan needs a computer with more memory.")


@contextlib.contextmanager
def _reading(path: Path, what: str, errors: tuple):
    """Turn the reader's own errors into one sentence naming ``path``, and running out of memory into an
    ``OutOfMemoryError`` naming it."""
    try:
        yield
    except MemoryError:
        raise OutOfMemoryError(f"{path}: reading it ran out of memory; close other programs or use a computer with "
                               "more memory.") from None
    except errors as exc:
        raise file_error(path, f"cannot be read as {what} (truncated or not an image: {exc.__class__.__name__})") \
            from None


def _nifti_errors() -> tuple:
    import nibabel as nib

    return (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, EOFError, zlib.error, OSError,
            ValueError, TypeError)


def nifti_header(path: Path):
    """(the lazily loaded image, its voxel -> RAS affine), once the header has passed every check."""
    import nibabel as nib

    with _reading(path, "NIfTI", _nifti_errors()):
        image = nib.load(str(path))
        dtype = image.get_data_dtype()
        check_declared_size(path, image.shape, dtype.itemsize)
        if dtype.names:  # NIfTI RGB(A) voxel types are structured arrays
            raise file_error(path, "is an RGB volume; a single-channel (grayscale) 3D scan is needed")
        return image, _nifti_affine(path, image.header, image.shape[:3])


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray, None]:
    image, affine = nifti_header(path)
    with _reading(path, "NIfTI", _nifti_errors()):
        return np.asanyarray(image.dataobj), affine, None


def _nifti_affine(path: Path, header, shape: tuple[int, ...]) -> np.ndarray:
    """The voxel -> RAS matrix every reader agrees on (see the module docstring), else a ``UserError``."""
    qform, _ = header.get_qform(coded=True)
    sform, _ = header.get_sform(coded=True)
    if qform is not None and sform is not None:
        last = [s - 1 for s in shape] + [0] * (3 - len(shape))
        corners = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]).T
        gap = float(np.linalg.norm(((sform - qform) @ corners)[:3], axis=0).max())
        if not gap <= QFORM_SFORM_TOLERANCE_MM:  # NaN in either matrix counts as disagreeing
            raise file_error(path, f"its NIfTI qform and sform disagree by up to {gap:.3g} mm, so programs place "
                                   "this image differently; make them equal (for example with fslorient "
                                   "-copysform2qform) and try again")
    chosen = sform if sform is not None else qform
    if chosen is None:
        zooms = [float(z) for z in header.get_zooms()[:3]] + [1.0] * 3
        chosen = LPS_TO_RAS @ np.diag([*zooms[:3], 1.0])
    return np.asarray(chosen, dtype=np.float64)


def _spatial_axes(path: Path, header: dict, ndim: int) -> list[int]:
    """The data axes that are spatial: those with a (finite) space direction; exactly three, each a 3-vector."""
    directions = header.get("space directions")
    if directions is None:
        axes = list(range(ndim))
    else:
        rows = [np.asarray(row, dtype=np.float64).ravel() for row in directions]
        axes = [a for a, row in enumerate(rows) if np.all(np.isfinite(row))]
        if any(rows[a].size != 3 for a in axes):
            raise file_error(path, f"its NRRD space has {rows[axes[0]].size} dimensions; a scan in a 3-dimensional "
                                   "space (RAS or LPS) is needed")
    if len(axes) != 3:
        raise file_error(path, f"has {len(axes)} spatial axes ({ndim}-D data); a 3D scan is needed")
    return axes


def _nrrd_affine(path: Path, header: dict, spatial_axes: list[int]) -> np.ndarray:
    directions = header.get("space directions")
    affine = np.eye(4)
    if directions is not None:
        affine[:3, :3] = np.array([np.asarray(directions[a], dtype=np.float64).ravel() for a in spatial_axes]).T
    else:  # no orientation in the file: spacings along the axes
        spacings = np.asarray(header.get("spacings", [1.0] * (max(spatial_axes) + 1)), dtype=np.float64).ravel()
        if spacings.size <= max(spatial_axes):
            raise file_error(path, "its NRRD 'spacings' field does not give one spacing per axis")
        affine[:3, :3] = np.diag(np.nan_to_num(spacings[spatial_axes], nan=1.0))
    origin = header.get("space origin")
    if origin is not None:
        origin = np.asarray(origin, dtype=np.float64).ravel()
        if origin.size != 3:
            raise file_error(path, f"its NRRD space origin has {origin.size} coordinates; a 3D scan needs 3")
        affine[:3, 3] = origin
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space in ("left-posterior-superior", "lps", "scanner-xyz"):
        affine = LPS_TO_RAS @ affine
    elif space not in ("right-anterior-superior", "ras"):
        raise file_error(path, f"NRRD space '{space}' is not supported (use RAS or LPS)")
    return affine


def _segments_from_header(path: Path, header: dict) -> tuple[LabelTable | None, dict[int, tuple[int, int]]]:
    """Segment table of a ``.seg.nrrd`` header and, per output value, the (layer, value) it is stored at.

    A single-layer file keeps its label values; segments spread over several layers (overlapping segments) get
    values 1..N in segment order, since one label map cannot hold their overlap.
    """
    segments = []
    index = 0
    while f"Segment{index}_Name" in header:
        key = f"Segment{index}_"
        try:
            color = tuple(int(round(float(c) * 255)) for c in str(header.get(key + "Color", "0.5 0.5 0.5")).split()[:3])
            layer, value = int(header.get(key + "Layer", 0)), int(header.get(key + "LabelValue", index + 1))
        except (ValueError, OverflowError):
            raise file_error(path, f"its segment {index} has a colour, layer or label value that is not a number") \
                from None
        if len(color) != 3 or not all(0 <= c <= 255 for c in color) or layer < 0 or not 0 < value <= 65535:
            raise file_error(path, f"its segment {index} has a colour, layer or label value out of range")
        terminology = None
        for tag in str(header.get(key + "Tags", "")).split("|"):
            if tag.startswith("TerminologyEntry:"):
                terminology = tag[len("TerminologyEntry:"):]
        segments.append((str(header[key + "Name"]), color, terminology, layer, value))
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


def _nrrd_errors() -> tuple:
    import nrrd

    return nrrd.NRRDError, EOFError, zlib.error, OSError, ValueError, KeyError, TypeError, IndexError


def nrrd_header(path: Path) -> tuple[dict, list[int], np.ndarray, LabelTable | None, dict]:
    """(header, spatial axes, voxel -> RAS affine, segment table, where each segment is stored), once the header
    has passed every check; the voxels are not read."""
    import nrrd

    with _reading(path, "NRRD", _nrrd_errors()):
        header = nrrd.read_header(str(path))
        sizes = [int(s) for s in header["sizes"]]
        check_declared_size(path, sizes, _NRRD_TYPES.get(str(header.get("type")), 8))
        spatial_axes = _spatial_axes(path, header, len(sizes))
        affine = _nrrd_affine(path, header, spatial_axes)
    return (header, spatial_axes, affine, *_segments_from_header(path, header))


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray, LabelTable | None]:
    import nrrd

    _, spatial_axes, affine, table, where = nrrd_header(path)
    with _reading(path, "NRRD", _nrrd_errors()):
        data, _ = nrrd.read(str(path))
    non_spatial = [a for a in range(data.ndim) if a not in spatial_axes]
    if table is not None:
        # Slicer segmentation: possibly several layers along a non-spatial axis; each segment is (layer, value).
        layers = np.moveaxis(data, non_spatial, -1).reshape(*[data.shape[a] for a in spatial_axes], -1) \
            if non_spatial else data[..., None]
        if max(layer for layer, _ in where.values()) >= layers.shape[-1]:
            raise file_error(path, f"a segment lies in a layer the file does not have ({layers.shape[-1]} layers)")
        labels = np.zeros(layers.shape[:3], dtype=np.int32)
        for segment_value, (layer, value) in where.items():
            labels[layers[..., layer] == value] = segment_value
        return labels, affine, table
    if non_spatial:
        data = np.moveaxis(data, non_spatial, -1)
    return data, affine, None
