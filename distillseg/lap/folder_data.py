"""The generic layout: a folder of frames with index masks and a label table.

::

    <root>/images/<name>.png|jpg|tif      RGB frames (sub-folders allowed: the first level names the patient)
    <root>/masks/<name>.png               index masks, same relative path and stem as the frame
    <root>/labels.json                    {"1": "liver", ...} or a list of {"value", "name", "color"} entries
                                          (a Slicer .ctbl colour table named labels.ctbl works as well)

Each structure asked for must be named in the label table; pixels of the table's other structures count as
background, 255 means "no label" and a value the table does not name is refused (``distillseg.lap.index_masks``).
Frames without a mask file are refused, so a half-exported folder is noticed.
"""

from __future__ import annotations

from pathlib import Path

from distillseg.contract.errors import file_error
from distillseg.contract.frames import FRAME_SUFFIXES
from distillseg.contract.labels import read_label_table
from distillseg.lap.dsad import FrameRecord
from distillseg.lap.index_masks import IndexMaskTable

LABEL_FILES = ("labels.json", "labels.ctbl", "labels.txt")


def is_folder_root(root: Path) -> bool:
    return (root / "images").is_dir() and (root / "masks").is_dir()


def _label_file(root: Path) -> Path:
    for name in LABEL_FILES:
        if (root / name).is_file():
            return root / name
    raise file_error(root, "has images/ and masks/ but no labels.json naming the mask values")


def list_folder(root: str | Path, classes: list[str], patients: list[str] | None = None,
                unknown_values: str = "refuse") -> tuple[list[FrameRecord], IndexMaskTable]:
    """Records of every frame (``masks`` maps each class to the frame's index mask) and the mask values' table."""
    root = Path(root)
    label_file = _label_file(root)
    by_name = {e.name: e.value for e in read_label_table(label_file).entries}
    for name in classes:
        if name not in by_name:
            raise file_error(label_file,
                             f"unknown structure name '{name}' (it names: {', '.join(sorted(by_name))})")
    table = IndexMaskTable({c: by_name[c] for c in classes}, frozenset(by_name.values()), str(label_file),
                           f"add it to {label_file.name}, correct the mask, or leave such frames out with "
                           f"--unknown-values skip", unknown_values)
    records = []
    for image in sorted((root / "images").rglob("*")):
        if not image.is_file() or image.suffix.lower() not in FRAME_SUFFIXES or image.name.startswith("."):
            continue
        relative = image.relative_to(root / "images")
        patient = relative.parts[0] if len(relative.parts) > 1 else "all"
        if patients and patient not in patients:
            continue
        mask = next((m for m in (root / "masks" / relative.parent).glob(relative.stem + ".*")
                     if m.suffix.lower() in (".png", ".tif", ".tiff", ".bmp")), None)
        if mask is None:
            raise file_error(image, f"has no mask (expected masks/{relative.with_suffix('.png')})")
        records.append(FrameRecord(image, patient, {c: mask for c in classes}, all_annotated=True))
    if not records:
        raise file_error(root / "images", "holds no frames (PNG/JPEG/TIFF) for the chosen patients")
    return records, table
