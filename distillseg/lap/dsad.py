"""The Dresden Surgical Anatomy Dataset (DSAD) folder layout.

::

    <root>/<structure>/<NN>/imageXX.png + maskXX.png              one binary mask per frame, that structure only
    <root>/multilabel/<NN>/imageXX.png + maskXX_<structure>.png    every structure annotated on the same frame

``NN`` is the surgery (patient) number. Masks are binary with values 0/255 or 0/1. The standard split is by
surgery: test 02 07 11 13 14 18 20 32, validation 03 21 26, training the rest.

``list_dsad`` returns one ``FrameRecord`` per distinct frame with the masks of the structures asked for. With the
per-structure folders, a frame that appears in several of them (same image bytes) is merged into one record; a
structure that has no mask for a frame counts as background there — exactly the class-incremental setting, where
only the structures being learned are annotated.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from distillseg.contract.errors import UserError, file_error
from distillseg.contract.frames import FRAME_SUFFIXES
from distillseg.lap.classes import DSAD_STRUCTURES

MULTILABEL = "multilabel"
SPLITS = {
    "test": ("02", "07", "11", "13", "14", "18", "20", "32"),
    "val": ("03", "21", "26"),
}
_IMAGE_NAME = re.compile(r"^image(\w*?)\.(png|jpe?g|tiff?)$", re.IGNORECASE)


@dataclass
class FrameRecord:
    """One frame on disk and, per structure name, the mask file that annotates it.

    ``masks[name] is None`` means "no mask": the structure is not annotated on this frame, unless
    ``all_annotated`` (multilabel and index-mask folders annotate every structure; a missing file means absent).
    """

    image: Path
    patient: str
    masks: dict[str, Path | None] = field(default_factory=dict)
    all_annotated: bool = False

    def annotates(self, name: str) -> bool:
        return self.all_annotated or self.masks.get(name) is not None


def is_dsad_root(root: Path) -> bool:
    """True when ``root`` holds a ``multilabel`` folder or a folder named after a DSAD structure."""
    return root.is_dir() and any((root / name).is_dir() for name in (MULTILABEL, *DSAD_STRUCTURES))


def structure_folders(root: Path) -> list[str]:
    """Names of the per-structure folders present (every sub-folder except ``multilabel`` and hidden ones)."""
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and p.name != MULTILABEL and not p.name.startswith("."))


def _patient_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def select_patients(available: list[str], split: str = "all", patients: list[str] | None = None) -> set[str]:
    """Surgeries to use: an explicit list, or the standard split (``train`` = neither test nor val)."""
    if patients:
        return {p.zfill(2) if p.isdigit() else p for p in patients}
    if split == "all":
        return set(available)
    if split in SPLITS:
        return set(available) & set(SPLITS[split])
    if split == "train":
        held_out = set(SPLITS["test"]) | set(SPLITS["val"])
        return {p for p in available if p not in held_out}
    raise UserError(f"Unknown split '{split}'; use all, train, val or test.")


def _frames_in(folder: Path) -> list[tuple[Path, str]]:
    """(image path, frame id XX) for every ``imageXX.<suffix>`` in a patient folder."""
    frames = []
    for path in sorted(folder.iterdir()):
        match = _IMAGE_NAME.match(path.name)
        if match and path.suffix.lower() in FRAME_SUFFIXES:
            frames.append((path, match.group(1)))
    return frames


def _mask_for(folder: Path, frame_id: str, structure: str | None) -> Path | None:
    stem = f"mask{frame_id}" + (f"_{structure}" if structure else "")
    for suffix in (".png", ".PNG", ".tif", ".tiff", ".bmp"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return None


def _missing_structure(root: Path, name: str, have: list[str]) -> UserError:
    known = ", ".join(have) if have else "none"
    if name in DSAD_STRUCTURES:
        return file_error(root / name, f"structure folder is missing (the data has: {known})")
    return file_error(root, f"unknown structure name '{name}' (the data has: {known})")


def _digest(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def list_dsad(root: str | Path, classes: list[str], source: str = "auto", split: str = "all",
              patients: list[str] | None = None) -> list[FrameRecord]:
    """The frames of the chosen surgeries that annotate ``classes``.

    ``source``: ``structures`` (per-structure folders), ``multilabel``, or ``auto`` (per-structure folders when every
    class has one, else ``multilabel``). Raises ``UserError`` naming the folder when a structure is missing, a frame
    has no mask, or nothing is left after the patient selection.
    """
    root = Path(root)
    if not root.is_dir():
        raise file_error(root, "data folder does not exist")
    have = structure_folders(root)
    if source == "auto":
        source = "structures" if all(c in have for c in classes) or not (root / MULTILABEL).is_dir() else MULTILABEL
    if source == "structures":
        for name in classes:
            if name not in have:
                raise _missing_structure(root, name, have)
        records = _list_structure_folders(root, classes, split, patients)
    elif source == MULTILABEL:
        records = _list_multilabel(root, classes, split, patients)
    else:
        raise UserError(f"Unknown data source '{source}'; use auto, structures or multilabel.")
    if not records:
        chosen = ",".join(patients) if patients else f"split '{split}'"
        raise file_error(root, f"no frames for {', '.join(classes)} in the chosen surgeries ({chosen})")
    return records


def _list_structure_folders(root: Path, classes: list[str], split: str,
                            patients: list[str] | None) -> list[FrameRecord]:
    by_content: dict[str, FrameRecord] = {}
    for name in classes:
        folders = _patient_folders(root / name)
        chosen = select_patients([f.name for f in folders], split, patients)
        for folder in folders:
            if folder.name not in chosen:
                continue
            for image, frame_id in _frames_in(folder):
                mask = _mask_for(folder, frame_id, None)
                if mask is None:
                    raise file_error(image, f"has no mask (expected mask{frame_id}.png beside it)")
                record = by_content.setdefault(_digest(image), FrameRecord(image, folder.name,
                                                                           {c: None for c in classes}))
                record.masks[name] = mask
    return sorted(by_content.values(), key=lambda r: (r.patient, str(r.image)))


def _list_multilabel(root: Path, classes: list[str], split: str, patients: list[str] | None) -> list[FrameRecord]:
    base = root / MULTILABEL
    if not base.is_dir():
        raise file_error(base, "folder is missing (needed for structures without their own folder)")
    folders = _patient_folders(base)
    chosen = select_patients([f.name for f in folders], split, patients)
    records, seen = [], set()
    for folder in folders:
        if folder.name not in chosen:
            continue
        for image, frame_id in _frames_in(folder):
            masks = {c: _mask_for(folder, frame_id, c) for c in classes}
            seen.update(c for c, m in masks.items() if m is not None)
            records.append(FrameRecord(image, folder.name, masks, all_annotated=True))
    missing = [c for c in classes if c not in seen]
    if records and missing:
        # No frame of the chosen surgeries has a mask for this name: a typo or a structure the data lacks.
        raise _missing_structure(root, missing[0], sorted(_multilabel_names(base) | set(structure_folders(root))))
    return records


def _multilabel_names(base: Path) -> set[str]:
    """Structure names that occur in ``maskXX_<structure>`` files of a multilabel folder."""
    names = set()
    for folder in _patient_folders(base):
        for path in folder.iterdir():
            match = re.match(r"^mask\d*_(.+)\.\w+$", path.name)
            if match:
                names.add(match.group(1))
    return names
