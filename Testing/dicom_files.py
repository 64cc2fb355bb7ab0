"""DICOM series written from a volume with pydicom, for the tests of DICOM input and DICOM SEG output.

``write_series(folder, array, affine)`` writes an (I, J, K) array on a voxel -> RAS grid as K single-frame MR
images: ``i`` along a row, ``j`` down a column, ``k`` over the slices, in DICOM's LPS patient space; intensities
stored as int16 with ``RescaleSlope``/``RescaleIntercept``. ``modality_values`` gives the float32 voxels a reader
that applies the rescale must return. Slices are written in shuffled order so a reader has to sort them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SLOPE, INTERCEPT = 0.001, -0.25  # stored int16 -> intensity


def rotation(degrees_x: float, degrees_y: float) -> np.ndarray:
    """(4, 4) rotation about x then y (RAS), for oblique grids."""
    a, b = np.radians(degrees_x), np.radians(degrees_y)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    matrix = np.eye(4)
    matrix[:3, :3] = ry @ rx
    return matrix


def stored_values(array: np.ndarray) -> np.ndarray:
    """The int16 values that hold ``array`` (intensities) through the rescale."""
    return np.clip(np.rint((np.asarray(array, np.float64) - INTERCEPT) / SLOPE), -32768, 32767).astype(np.int16)


def modality_values(array: np.ndarray) -> np.ndarray:
    """The float32 intensities a DICOM reader returns for ``array`` written by ``write_series``."""
    return (stored_values(array).astype(np.float64) * SLOPE + INTERCEPT).astype(np.float32)


def _ds(value: float) -> str:
    return f"{value:.10g}"


def _patient_and_study(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Brain", "OSS-TEST", "19700101", "O"
    ds.StudyInstanceUID, ds.StudyID, ds.StudyDate, ds.StudyTime = study_uid, "1", "20250101", "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName = "A1", ""
    return ds


def write_series(folder: Path, array: np.ndarray, affine: np.ndarray, description: str = "T1 oblique",
                 series_uid: str | None = None, study_uid: str | None = None, frame_uid: str | None = None,
                 seed: int = 0) -> list[Path]:
    """Write the series (see the module docstring); returns the files in slice order k = 0..K-1."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS_TO_RAS @ np.asarray(affine, np.float64)
    column_step, row_step, slice_step, origin = lps[:3, 0], lps[:3, 1], lps[:3, 2], lps[:3, 3]
    spacing = [np.linalg.norm(row_step), np.linalg.norm(column_step)]  # DICOM: between rows, between columns
    orientation = [*(column_step / spacing[1]), *(row_step / spacing[0])]
    series_uid, study_uid, frame_uid = series_uid or generate_uid(), study_uid or generate_uid(), \
        frame_uid or generate_uid()
    stored = stored_values(array)
    paths = []
    for k in range(stored.shape[2]):
        ds = _patient_and_study(study_uid)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID, ds.SOPClassUID = MRImageStorage, MRImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = "MR", series_uid, 7, description
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_uid, ""
        ds.Manufacturer, ds.InstanceNumber = "test", k + 1
        ds.ImageOrientationPatient = [_ds(v) for v in orientation]
        ds.ImagePositionPatient = [_ds(v) for v in origin + k * slice_step]
        ds.PixelSpacing = [_ds(v) for v in spacing]
        ds.SliceThickness = _ds(abs(float(np.cross(orientation[:3], orientation[3:]) @ slice_step)))
        ds.RescaleSlope, ds.RescaleIntercept = _ds(SLOPE), _ds(INTERCEPT)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()  # (rows, columns) = (j, i)
        paths.append(folder / f"slice{k:04d}.dcm")
        ds.save_as(paths[-1], enforce_file_format=True)
    order = np.random.default_rng(seed).permutation(len(paths))
    renamed = [folder / f"IM{int(o):05d}" for o in order]  # file names that say nothing of the slice order
    for path, new in zip(paths, renamed):
        path.rename(new)
    return renamed
