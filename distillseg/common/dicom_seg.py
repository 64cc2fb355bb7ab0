"""DICOM Segmentation out: a label map on a DICOM series' grid as a DICOM SEG that references that series.

Written with highdicom, the optional extra ``distillseg[dicom]`` (highdicom needs pydicom >= 3.0.1, Slicer <= 5.10
ships 2.4, so it is imported only when a SEG is written). Segmentation type BINARY: Slicer (and dcmqi) cannot read
LABELMAP SEGs yet. Each structure of the model's label table is one segment, numbered 1..N in label-value order,
with its name, its colour as the recommended display CIELab value, its SNOMED-CT category and type from the
table's terminology (Slicer's ``context~category~type~…`` string, codes as ``scheme^value^meaning``), and the
algorithm identification (model name, version = when it was trained, method; algorithm type AUTOMATIC). A
structure without terminology gets Slicer's generic code for a new segment, category and type "Tissue"
(SCT 85756007). Frames that hold no segment are left out (highdicom's default).

The file carries the engine's mark in its ContentDescription, so a later run may replace it and never a SEG of
someone else (``DICOM_SEG``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillseg import __version__
from distillseg.contract.atomic import StagedFiles, staging
from distillseg.contract.errors import file_error
from distillseg.contract.labels import LabelTable
from distillseg.contract.outputs import OutputKind, mark

SEG_SUFFIXES = (".dcm",)
GENERIC_CODE = ("85756007", "SCT", "Tissue")  # Slicer's default terminology of a new segment (category and type)
_TOKEN = "dicom-seg"
SERIES_NUMBER_OFFSET = 1000  # the SEG's series number: its source's + this, so viewers list it after the source
INSTALL = "writing a DICOM SEG needs the optional package highdicom; install it with: pip install distillseg[dicom]"


def _is_engine_seg(path: Path) -> bool:
    import pydicom
    import pydicom.errors

    try:
        header = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["Modality", "ContentDescription"])
    except (pydicom.errors.InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError):
        return False  # unreadable as DICOM: not ours
    return header.get("Modality") == "SEG" and mark(_TOKEN) in str(header.get("ContentDescription", ""))


DICOM_SEG = OutputKind("a DICOM SEG", _is_engine_seg)


@dataclass
class Algorithm:
    """What made the segments: the model's ``name``, its ``version`` (when it was trained) and ``method``."""

    name: str
    version: str
    method: str


def is_seg_path(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(SEG_SUFFIXES)


def _highdicom(output: str | os.PathLike):
    """The highdicom module, or ``UserError`` naming ``output`` and saying how to install it (missing, or unusable
    with the pydicom there: highdicom needs pydicom >= 3.0.1)."""
    try:
        import highdicom
    except ImportError:
        raise file_error(output, INSTALL) from None
    return highdicom


def check_available(output: str | os.PathLike) -> None:
    """Refuse, before any work, a SEG output when highdicom cannot be imported."""
    _highdicom(output)


def check_source(output: str | os.PathLike, source: str | os.PathLike) -> None:
    """A SEG must reference the DICOM images it segments: refuse one for an input that is not a DICOM series."""
    if not Path(source).is_dir():
        raise file_error(output, f"a DICOM SEG must reference DICOM source images, but the input {source} is not "
                                 "a DICOM series folder; write .nii.gz or .seg.nrrd for it instead")


def _code(text: str | None):
    """A pydicom ``Code`` from ``scheme^value^meaning``, or None when the text is not one."""
    from pydicom.sr.coding import Code

    parts = (text or "").split("^")
    if len(parts) != 3 or not all(part.strip() for part in parts):
        return None
    scheme, value, meaning = (part.strip() for part in parts)
    return Code(value, scheme, meaning)


def terminology_codes(terminology: str | None) -> tuple[object, object]:
    """(category, type) ``Code``s of a Slicer terminology string ``context~category~type~…``; the generic
    ``GENERIC_CODE`` for either that it does not give."""
    from pydicom.sr.coding import Code

    parts = (terminology or "").split("~")
    category = _code(parts[1]) if len(parts) > 2 else None
    kind = _code(parts[2]) if len(parts) > 2 else None
    generic = Code(*GENERIC_CODE)
    return category or generic, kind or generic


def _segment_descriptions(hd, table: LabelTable, algorithm: Algorithm) -> list:
    from pydicom.sr.codedict import codes

    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name[:64], version=algorithm.version[:64], family=codes.cid7162.ArtificialIntelligence,
        source=f"distillseg {__version__}", parameters={"method": algorithm.method})
    descriptions = []
    for number, entry in enumerate(table.entries, 1):
        category, kind = terminology_codes(entry.terminology)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=entry.name[:64], segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification, tracking_uid=hd.UID(), tracking_id=entry.name[:64],
            display_color=hd.color.CIELabColor.from_rgb(*entry.color)))
    return descriptions


def write_seg(path: str | os.PathLike, labels: np.ndarray, series, table: LabelTable, algorithm: Algorithm,
              staged: StagedFiles | None = None, kind: OutputKind = DICOM_SEG) -> Path:
    """Write the (I, J, K) label map ``labels`` on the grid of ``series`` (a ``dicom_series.Series``: slice k is
    its ``headers[k]``) as a BINARY DICOM SEG at ``path``, atomically (in the batch ``staged`` when given);
    segments are ``table``'s structures."""
    hd = _highdicom(path)
    path = Path(path)
    if tuple(labels.shape) != tuple(series.shape):
        raise ValueError(f"labels {labels.shape} are not on the series' grid {series.shape}")
    lookup = np.zeros(max([*table.values, int(labels.max(initial=0))]) + 1, dtype=np.uint16)
    for number, value in enumerate(table.values, 1):
        lookup[value] = number
    # (I, J, K) label values -> (frames = K, rows = J, columns = I) segment numbers, frame k on source slice k.
    numbers = lookup[labels].transpose(2, 1, 0)
    numbers = numbers.astype(np.uint8) if len(table.values) < 256 else numbers
    source = series.headers[0]
    seg = hd.seg.Segmentation(
        source_images=series.headers, pixel_array=np.ascontiguousarray(numbers),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(hd, table, algorithm), series_instance_uid=hd.UID(),
        series_number=int(source.get("SeriesNumber") or 0) + SERIES_NUMBER_OFFSET, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="OneShotSeg", manufacturer_model_name=algorithm.name[:64],
        software_versions=f"distillseg {__version__}", device_serial_number="none",
        content_label="ONESHOTSEG", content_description=mark(_TOKEN),
        series_description=f"OneShotSeg {algorithm.name}"[:64])
    with staging(staged) as batch:
        seg.save_as(str(batch.stage(path, kind)))
    return path
