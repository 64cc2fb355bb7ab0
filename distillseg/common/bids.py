"""BIDS datasets in and BIDS-Derivatives out, for ``oneshot segment --bids`` and ``oneshot train --unlabeled-bids``.

A dataset is a folder with ``dataset_description.json`` (BIDS requires it; without it a folder is refused rather than
guessed at). Its T1-weighted scans are ``sub-<label>/[ses-<label>/]anat/*_T1w.nii[.gz]``. Label maps go to the
derivative dataset (default ``<dataset>/derivatives/oneshotseg``) at the scan's own relative place, named by the
scan's entities with the ``dseg`` suffix: ``sub-01/ses-1/anat/sub-01_ses-1_T1w.nii.gz`` →
``sub-01/ses-1/anat/sub-01_ses-1_dseg.nii.gz``. Without a ``space`` entity the map is on the scan's own grid,
which is where the engine writes it. Beside them: ``dataset_description.json`` (``DatasetType: derivative``,
``GeneratedBy``) and ``dseg.tsv`` (``index``, ``name``, ``color``: the model's structures), as the BIDS-Derivatives
conventions for discrete segmentations ask.

Outputs follow ``contract.outputs``: a label map or description replaces only the engine's own earlier one (the
description carries the engine's mark in its ``GeneratedBy`` entry, and ``dseg.tsv`` counts as ours when the
description beside it is).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from distillseg import __version__
from distillseg.contract.errors import file_error
from distillseg.contract.labels import LabelTable
from distillseg.contract.outputs import OutputKind, carries_mark, mark

DESCRIPTION = "dataset_description.json"
LABEL_TABLE = "dseg.tsv"
PIPELINE = "oneshotseg"  # the derivative folder's name under <dataset>/derivatives
BIDS_VERSION = "1.9.0"
_TOKEN = "bids-derivative"
_T1W_PATTERNS = ("sub-*/anat/*_T1w.nii.gz", "sub-*/anat/*_T1w.nii", "sub-*/ses-*/anat/*_T1w.nii.gz",
                 "sub-*/ses-*/anat/*_T1w.nii")

DERIVATIVE_DESCRIPTION = OutputKind("a BIDS derivative description", lambda path: carries_mark(path, _TOKEN))
DERIVATIVE_LABEL_TABLE = OutputKind("a BIDS label table",
                                    lambda path: carries_mark(Path(path).parent / DESCRIPTION, _TOKEN))


def check_dataset(dataset: str | os.PathLike) -> Path:
    """The dataset's root, or ``UserError`` naming the folder when it is not a BIDS dataset."""
    root = Path(dataset)
    if not root.is_dir():
        raise file_error(root, "BIDS dataset folder does not exist" if not root.exists() else
                         "is a file, not a BIDS dataset folder")
    if not (root / DESCRIPTION).is_file():
        raise file_error(root, f"not a BIDS dataset (no {DESCRIPTION} in the folder)")
    return root


def t1w_scans(dataset: str | os.PathLike) -> list[Path]:
    """Every T1-weighted scan of the dataset, in subject/session order."""
    root = check_dataset(dataset)
    scans = sorted({path for pattern in _T1W_PATTERNS for path in root.glob(pattern) if path.is_file()})
    if not scans:
        raise file_error(root, "BIDS dataset holds no T1-weighted scan (sub-*/[ses-*/]anat/*_T1w.nii[.gz])")
    return scans


def derivative_folder(dataset: str | os.PathLike, output: str | os.PathLike | None) -> Path:
    """Where the derivatives go: ``output``, or ``<dataset>/derivatives/oneshotseg``."""
    return Path(output) if output else Path(dataset) / "derivatives" / PIPELINE


def dseg_path(dataset: str | os.PathLike, scan: Path, derivatives: Path) -> Path:
    """The label map's place in the derivative dataset for ``scan`` (``…_T1w.nii[.gz]`` → ``…_dseg.nii.gz``)."""
    relative = scan.relative_to(Path(dataset))
    entities = relative.name.split("_T1w.nii")[0]
    return derivatives / relative.parent / f"{entities}_dseg.nii.gz"


def description(model_name: str, method: str) -> dict:
    """The derivative dataset's ``dataset_description.json`` (its ``GeneratedBy`` carries the engine's mark)."""
    return {
        "Name": f"OneShotSeg segmentations ({model_name})",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "OneShotSeg", "Version": __version__,
                         "Description": f"distillseg {method} segment with model '{model_name}' "
                                        f"({mark(_TOKEN)})",
                         "CodeURL": "https://github.com/OneShotSeg/SlicerOneShotSeg"}],
    }


def write_description(path: Path, data: dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
        handle.write("\n")


def write_label_table(path: Path, table: LabelTable) -> None:
    """``dseg.tsv``: background and each structure, with its colour as ``#rrggbb``."""
    rows = ["index\tname\tcolor", "0\tbackground\t#000000"]
    rows += [f"{entry.value}\t{entry.name}\t#{''.join(f'{c:02x}' for c in entry.color)}" for entry in table.entries]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
