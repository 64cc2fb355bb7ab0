"""The official Endoscapes2023 release layout (github.com/CAMMA-public/Endoscapes, the unpacked ``endoscapes.zip``),
read for its segmentation subset Endoscapes-Seg50.

::

    <root>/train_seg/<video>_<frame>.jpg   frames of the 30 training videos (+ annotation_coco.json, not needed)
    <root>/val_seg/…, <root>/test_seg/…     frames of the 10 validation and 10 test videos
    <root>/semseg/<video>_<frame>.png       semantic mask of every Seg50 frame, 854x480, three identical channels,
                                            pixel = class id
    (train/, val/, test/, 12_5/, 25/, insseg/, *_vids.txt, seg_label_map.txt, all_metadata.csv belong to the
    detection and CVS sub-data sets or repeat what the folders say; they are not read)

Class ids, from the release's README and its ``seg_label_map.txt`` description (the same order as the class list of
CAMMA's SurgLatentGraph Endoscapes configuration): 0 background, 1 cystic plate, 2 Calot's (hepatocystic)
triangle, 3 cystic artery, 4 cystic duct, 5 gallbladder, 6 tool; 255 = uncertain, left out of training and
scoring. The table is fixed here because the format of ``seg_label_map.txt`` is not documented.

``--split train|val|test`` picks the official ``<split>_seg`` folder (``all`` = every one present); ``--patients``
picks videos by number; the patient of a frame is its video.
"""

from __future__ import annotations

from pathlib import Path

from distillseg.contract.errors import UserError, file_error
from distillseg.contract.frames import FRAME_SUFFIXES
from distillseg.lap.dsad import FrameRecord
from distillseg.lap.index_masks import IndexMaskTable

SPLITS = ("train", "val", "test")
MASKS = "semseg"
# Official class ids (the names are those of the generic-layout copy in ../shared/data, so models trained on either
# layout know the same structures).
CLASSES = {"cystic_plate": 1, "calot_triangle": 2, "cystic_artery": 3, "cystic_duct": 4, "gallbladder": 5, "tool": 6}


def _split_folder(root: Path, split: str) -> Path:
    return root / f"{split}_seg"


def is_endoscapes_root(root: Path) -> bool:
    """True when ``root`` holds ``semseg/`` and at least one official ``<split>_seg/`` frame folder."""
    return (root / MASKS).is_dir() and any(_split_folder(root, s).is_dir() for s in SPLITS)


def _chosen_splits(root: Path, split: str) -> list[Path]:
    if split == "all":
        return [_split_folder(root, s) for s in SPLITS if _split_folder(root, s).is_dir()]
    if split not in SPLITS:
        raise UserError(f"Unknown split '{split}'; use all, train, val or test.")
    folder = _split_folder(root, split)
    if not folder.is_dir():
        raise file_error(folder, f"folder of the official '{split}' split is missing")
    return [folder]


def list_endoscapes(root: str | Path, classes: list[str], split: str = "all", patients: list[str] | None = None,
                    unknown_values: str = "refuse") -> tuple[list[FrameRecord], IndexMaskTable]:
    """Records of the chosen split's frames (every structure annotated; ``masks`` maps each class to the frame's
    ``semseg`` mask) and the official table of mask values. Raises ``UserError`` naming the file or folder for an
    unknown structure name, a frame without a mask, or no frame left after the selection."""
    root = Path(root)
    for name in classes:
        if name not in CLASSES:
            raise file_error(root, f"unknown structure name '{name}' (Endoscapes names: {', '.join(CLASSES)})")
    table = IndexMaskTable({c: CLASSES[c] for c in classes}, frozenset(CLASSES.values()),
                           "the Endoscapes2023 class table", "correct the mask, or leave such frames out with "
                           "--unknown-values skip", unknown_values)
    wanted = set(patients) if patients else None
    records = []
    for folder in _chosen_splits(root, split):
        for image in sorted(folder.iterdir()):
            if not image.is_file() or image.suffix.lower() not in FRAME_SUFFIXES or image.name.startswith("."):
                continue
            video = image.stem.split("_")[0]
            if wanted is not None and video not in wanted:
                continue
            mask = root / MASKS / f"{image.stem}.png"
            if not mask.is_file():
                raise file_error(image, f"has no mask (expected {MASKS}/{mask.name})")
            records.append(FrameRecord(image, video, {c: mask for c in classes}, all_annotated=True))
    if not records:
        chosen = ",".join(patients) if patients else f"split '{split}'"
        raise file_error(root, f"no frames in the chosen videos ({chosen})")
    return records, table

