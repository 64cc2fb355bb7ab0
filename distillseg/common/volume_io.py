"""Reading and writing 3D volumes (NIfTI, NRRD, Slicer ``.seg.nrrd``) with their exact voxel-to-world geometry.

Convention used throughout the engine: ``array`` is indexed ``[i, j, k]`` (the file's own axis order, fastest axis
first) and ``affine`` is the 4x4 matrix from voxel index ``(i, j, k, 1)`` to **RAS** world millimetres (nibabel's
convention). NRRD files in LPS space are converted on read and written back in LPS, as Slicer does. Label maps are
always written on the exact grid they are given (shape, spacing, origin, direction), atomically.

How a NIfTI or NRRD header is trusted (its size, its space, the NIfTI qform and sform) is
``distillseg.common.volume_readers``; an input that is a folder is a DICOM series
(``distillseg.common.dicom_series``, imported only then; ``series_uids`` picks the series of a folder that holds
several). Written NIfTI files set qform and sform to the same matrix; written files of
every format carry the engine's mark (``distillseg.contract.outputs``), so a later run may replace them but never a
file of the user's. Two grids are the same when every corner lies within ``GRID_TOLERANCE_VOXELS`` of a voxel:
exports round positions by micrometres (a label map 5 µm off its image used to be refused).
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from distillseg.common.volume_readers import LPS_TO_RAS, nifti_header, nrrd_header, read_nifti, read_nrrd
from distillseg.contract.atomic import StagedFiles, staging
from distillseg.contract.errors import check_readable_file, file_error
from distillseg.contract.labels import LabelTable
from distillseg.contract.outputs import ANY_FILE, OutputKind, carries_mark, mark, marked_file

NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr", ".seg.nrrd")
MAX_LABEL_VALUE = 65535
GRID_TOLERANCE_VOXELS = 0.05  # far below what moves a label by a voxel, far above the rounding of any export
LABEL_MAP = marked_file("a label map", "label-map")


@dataclass
class Volume:
    """A 3D image or label map with its geometry.

    ``array``: (I, J, K) voxels in file order; ``affine``: (4, 4) voxel -> RAS mm; ``labels``: the segment table a
    ``.seg.nrrd`` carried (names, colours, terminology), else None; ``series``: the ``dicom_series.Series`` it was
    read from (what a DICOM SEG output references), else None.
    """

    array: np.ndarray
    affine: np.ndarray
    path: Path | None = None
    labels: LabelTable | None = field(default=None)
    series: object | None = None

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


def same_grid(a: Volume, b: Volume, tolerance_voxels: float = GRID_TOLERANCE_VOXELS) -> bool:
    """True when both volumes have the same shape and every corner of the grid lies at the same world position, to
    ``tolerance_voxels`` of the smallest voxel size."""
    if a.shape != b.shape:
        return False
    last = [s - 1 for s in a.shape]
    corners = np.array([[i, j, k, 1.0] for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]).T
    gap = np.linalg.norm(((a.affine - b.affine) @ corners)[:3], axis=0).max()
    return bool(gap <= tolerance_voxels * min(a.spacing.min(), b.spacing.min()))


# ----------------------------------------------------------------------------------------------------- reading
def check_volume_files(paths, series_uids=()) -> None:
    """Refuse, before any work, an input of an unsupported type, missing, empty or unreadable, or whose header
    fails the checks of ``volume_readers`` (a folder: of ``dicom_series``); its voxels are not read."""
    for path in map(Path, paths):
        if path.is_dir():
            from distillseg.common.dicom_series import find_series

            find_series(path, series_uids)
            continue
        kind = volume_format(path)
        check_readable_file(path)
        nifti_header(path) if kind == "nifti" else nrrd_header(path)


def read_volume(path: str | os.PathLike, series_uids=()) -> Volume:
    """Read a NIfTI or NRRD file, or a folder holding a DICOM series, as a ``Volume``; unreadable input raises a
    ``UserError`` naming the file or folder."""
    path = Path(path)
    if path.is_dir():
        from distillseg.common.dicom_series import read_series

        data, affine, series = read_series(path, series_uids)
        return Volume(array=data, affine=affine, path=path, series=series)
    kind = volume_format(path)
    check_readable_file(path)
    data, affine, table = read_nifti(path) if kind == "nifti" else read_nrrd(path)
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


def read_image(path: str | os.PathLike, series_uids=()) -> Volume:
    """A 3D scalar intensity image as float32; NaN/inf voxels and non-3D files are refused."""
    volume = read_volume(path, series_uids)
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


def _nifti(data: np.ndarray, affine: np.ndarray, token: str):
    import nibabel as nib

    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header["descrip"] = mark(token).encode("ascii")
    return image


def _write_nifti(handle, image, compressed: bool) -> None:
    import nibabel as nib

    # nibabel picks compression and even the file name's case from the name (it saved "x.Nii" as "x.nii"), so it
    # writes into a file object and the suffix only chooses gzip.
    # filename="": gzip would store the (temporary) file's name in its header, and a name can identify a patient.
    stream = gzip.GzipFile(filename="", fileobj=handle, mode="wb", compresslevel=6, mtime=0) if compressed else handle
    image.to_file_map({"image": nib.FileHolder(fileobj=stream)})
    if compressed:
        stream.close()


def _nrrd_bytes(data: np.ndarray, header: dict, token: str) -> tuple[bytes, bytes]:
    """(header text ending in its blank line, data) of a NRRD file written by pynrrd into memory."""
    import nrrd

    buffer = io.BytesIO()
    nrrd.write(buffer, data, {**header, "written_by": mark(token)}, index_order="F")
    text, _, payload = buffer.getvalue().partition(b"\n\n")
    return text + b"\n\n", payload


def _write_volume(path: Path, data: np.ndarray, affine: np.ndarray, header: dict, kind: OutputKind,
                  token: str, staged: StagedFiles | None) -> Path:
    """Write ``data`` on the grid ``affine`` at ``path`` (format from the suffix, any letter case): NIfTI,
    attached NRRD, or a ``.nhdr`` header with its data beside it in ``<stem>.raw.gz``; atomically (in the batch
    ``staged`` when given)."""
    name = path.name.lower()
    with staging(staged) as staged:
        if volume_format(path) == "nifti":
            with open(staged.stage(path, kind), "wb") as handle:
                _write_nifti(handle, _nifti(data, affine, token), name.endswith(".gz"))
            return path
        text, payload = _nrrd_bytes(data, header, token)
        if name.endswith(".nhdr"):
            data_path = path.with_name(path.name[: -len(".nhdr")] + ".raw.gz")
            # The data file is staged first, so it is in place before a header points at it.
            with open(staged.stage(data_path, kind if kind is ANY_FILE else _nhdr_data(path)), "wb") as handle:
                handle.write(payload)
            text = text[:-1] + f"data file: {data_path.name}\n\n".encode("utf-8")
            payload = b""
        with open(staged.stage(path, kind), "wb") as handle:
            handle.write(text + payload)
    return path


def _nhdr_data(header_path: Path) -> OutputKind:
    """The data file beside a ``.nhdr``: replaced only when the existing header there is the engine's and names it."""

    def recognise(data_path: Path) -> bool:
        if not carries_mark(header_path, "label-map") and not carries_mark(header_path, "image"):
            return False
        with open(header_path, "rb") as handle:
            return f"data file: {data_path.name}".encode("utf-8") in handle.read(1 << 16)

    return OutputKind("the data file of a .nhdr written by distillseg", recognise)


def write_labels(path: str | os.PathLike, labels: np.ndarray, affine: np.ndarray,
                 table: LabelTable | None = None, staged: StagedFiles | None = None,
                 kind: OutputKind = ANY_FILE) -> Path:
    """Write an (I, J, K) label map on the grid ``affine`` (voxel -> RAS); format from the suffix; atomic.

    ``.seg.nrrd`` files carry the segment names, colours and terminology of ``table`` (defaults if None). Every
    file carries the engine's mark; an existing file is replaced when ``kind`` recognises it (the segment verb
    passes ``LABEL_MAP``: only a label map the engine wrote). With ``staged``, the file joins that batch and
    appears when it is committed.
    """
    path = Path(path)
    volume_format(path)
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > MAX_LABEL_VALUE):
        raise ValueError("label values must lie in 0..65535")
    data = labels.astype(_label_dtype(labels))
    header = _nrrd_header(affine, data.shape)
    if path.name.lower().endswith(".seg.nrrd"):
        present = [int(v) for v in np.unique(data) if v != 0]
        header.update(_seg_nrrd_fields(data, (table or LabelTable()).restricted_to(
            sorted(set(present) | set((table or LabelTable()).values)))))
    return _write_volume(path, data, affine, header, kind, "label-map", staged)


def write_image(path: str | os.PathLike, image: np.ndarray, affine: np.ndarray, kind: OutputKind = ANY_FILE) -> Path:
    """Write an (I, J, K) float image on the grid ``affine``; format from the suffix; atomic; it may replace what
    ``kind`` recognises."""
    path = Path(path)
    volume_format(path)
    data = np.asarray(image, dtype=np.float32)
    return _write_volume(path, data, affine, _nrrd_header(affine, data.shape), kind, "image", None)
