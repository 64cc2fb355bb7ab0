"""Index masks (one value per pixel, a label table naming the values) to label maps in the model's numbering.

The rules, the same for every layout with index masks (the generic frame folder, the Endoscapes release):

- value 0, and every value the table names but the job does not learn: background;
- value 255 (``UNCERTAIN``): no label. It becomes ``IGNORE`` in the label map, so training leaves it out of every
  loss and scoring leaves it out of IoU and Dice (the Endoscapes maintainers' "uncertain" pixels, the convention of
  most semantic-segmentation data sets). Only a table that names 255 as a structure (binary 0/255 masks in a
  generic folder) keeps it a structure;
- any other value: the table and the mask disagree. Such a pixel used to count as background without a word. Now
  ``unknown_values="refuse"`` (the default) stops with one sentence naming the mask and the value, and ``"skip"``
  leaves the frame out (the job warns, naming it). Why no per-pixel rule: in the one real case known (Endoscapes
  frame 153_32700 holds value 7) the frame's known values are shifted too (gallbladder 6, tool 7), so neither
  background nor ignore would make its labels right; only the whole frame can be trusted or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distillseg.contract.errors import UserError, file_error
from distillseg.lap.mib_losses import IGNORE

UNCERTAIN = 255
UNKNOWN_VALUE_RULES = ("refuse", "skip")


class UnknownMaskValue(UserError):
    """A mask value the label table does not name (``frame`` is the frame it belongs to)."""

    def __init__(self, message: str, frame: Path):
        super().__init__(message)
        self.frame = frame


@dataclass(frozen=True)
class IndexMaskTable:
    """How a data set's mask values map to structures.

    ``values``: each structure asked for -> its mask value; ``known``: every value the table names (background 0
    and 255 aside); ``table``: the table as a refusal names it (a file, or the release's class list);
    ``remedy``: what to do about a value it does not name; ``unknown_values``: one of ``UNKNOWN_VALUE_RULES``.
    """

    values: dict[str, int]
    known: frozenset[int]
    table: str
    remedy: str
    unknown_values: str = "refuse"

    def __post_init__(self) -> None:
        if self.unknown_values not in UNKNOWN_VALUE_RULES:
            raise UserError(f"Unknown rule '{self.unknown_values}' for mask values; use "
                            f"{' or '.join(UNKNOWN_VALUE_RULES)}.")


def index_labels(mask: np.ndarray, path: Path, frame: Path, table: IndexMaskTable,
                 class_values: dict[str, int]) -> np.ndarray:
    """(h, w) integer mask values -> (h, w) uint8 label map: ``class_values[name]`` where the mask holds
    ``table.values[name]``, ``IGNORE`` where it holds 255 (unless the table names 255), 0 elsewhere.

    Raises ``UnknownMaskValue`` naming ``path`` (the mask of ``frame``) for a value the table does not name.
    """
    allowed = table.known | {0, UNCERTAIN}
    unknown = [int(v) for v in np.unique(mask) if int(v) not in allowed]
    if unknown:
        shown = ", ".join(str(v) for v in unknown[:6])
        named = ", ".join(str(v) for v in sorted(table.known))
        raise UnknownMaskValue(
            str(file_error(path, f"mask of frame {frame.name} holds value{'s' if len(unknown) > 1 else ''} {shown}, "
                                 f"which {table.table} does not name (it names {named}, with 0 = background and "
                                 f"255 = uncertain); {table.remedy}")), frame)
    labels = np.zeros(mask.shape, dtype=np.uint8)
    for name, value in class_values.items():
        labels[mask == table.values[name]] = value
    if UNCERTAIN not in table.known:
        labels[mask == UNCERTAIN] = IGNORE
    return labels
