"""Where things live on disk, for both sides: the user's model and job folders, and a training's checkpoint.

- The user's home folder is ``$ONESHOTSEG_HOME`` if set, else ``~/.oneshotseg``; models are ``<home>/models/<name>/``
  (one bundle folder each, both methods side by side: each module lists its own method's).
- A job's inputs wait in ``<home>/jobs/<method>/<name>/`` while it is unfinished (each method has its own folder,
  so models of the same name in both methods never share one).
- A training writing ``<out>`` keeps its checkpoint in ``<out>.checkpoint/`` beside it until it finishes; no model
  name may end in that suffix.
- Scans segmented into a folder get ``<stem>_seg<suffix>`` there (``segmentation_file_name``): the engine names its
  outputs so, and the Slicer module, which segments a batch of scans in one command, finds them so.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENVIRONMENT_VARIABLE = "ONESHOTSEG_HOME"
CHECKPOINT_SUFFIX = ".checkpoint"


def home_folder() -> Path:
    """``$ONESHOTSEG_HOME`` if that variable is set, else ``~/.oneshotseg``."""
    home = os.environ.get(HOME_ENVIRONMENT_VARIABLE)
    return Path(home) if home else Path.home() / ".oneshotseg"


def models_folder(home: str | os.PathLike | None = None) -> Path:
    """``<home>/models``: one bundle folder per model."""
    return Path(home if home is not None else home_folder()) / "models"


def jobs_folder(models: str | os.PathLike, method: str) -> Path:
    """``<home>/jobs/<method>`` for the model folder ``models`` (``<home>/models``)."""
    return Path(models).parent / "jobs" / method


def checkpoint_path(out: str | os.PathLike) -> Path:
    """``<out>.checkpoint``: the folder a training writing ``out`` keeps its checkpoint in."""
    out = Path(out)
    return out.with_name(out.name + CHECKPOINT_SUFFIX)


def is_checkpoint_name(name: str) -> bool:
    """True for a folder name that is a checkpoint's, not a model's."""
    return name.endswith(CHECKPOINT_SUFFIX)


def segmentation_file_name(input_name: str, suffix: str, folder: bool = False) -> str:
    """The name of a scan's segmentation in an output folder: ``<stem>_seg<suffix>``, the stem being the scan's
    file name without its volume suffix (``.nii.gz`` as one) and without a ``.seg`` before it; a scan that is a
    folder (a DICOM series) keeps its whole name."""
    if folder:
        return f"{input_name}_seg{suffix}"
    stem = input_name[: -len(".nii.gz")] if input_name.lower().endswith(".nii.gz") else Path(input_name).stem
    stem = stem[: -len(".seg")] if stem.lower().endswith(".seg") else stem
    return f"{stem}_seg{suffix}"
