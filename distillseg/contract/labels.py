"""Label tables: label value -> name, colour and optional terminology, as the atlas defines them.

The table travels in the model's manifest (``"labels": [{"value": 1, "name": ..., "color": [r, g, b],
"terminology": ...}]``, colours as 0-255 integers) so segments come out of the model with the atlas's names,
colours and terminology. Sources, in order of preference: a ``.seg.nrrd`` header, a colour-table file
(Slicer ``.ctbl`` / FreeSurfer LUT: ``value name r g b [a]`` per line), a ``--label-names`` JSON, or defaults.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from distillseg.contract.errors import file_error

# Distinct, colour-blind-aware colours (Okabe-Ito then Tableau 20) cycled for labels without a colour.
_PALETTE = [
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0), (204, 121, 167),
    (31, 119, 180), (174, 199, 232), (255, 127, 14), (255, 187, 120), (44, 160, 44), (152, 223, 138),
    (214, 39, 40), (255, 152, 150), (148, 103, 189), (197, 176, 213), (140, 86, 75), (196, 156, 148),
    (227, 119, 194), (247, 182, 210), (127, 127, 127), (199, 199, 199), (188, 189, 34), (219, 219, 141),
    (23, 190, 207), (158, 218, 229),
]


def default_color(value: int) -> tuple[int, int, int]:
    return _PALETTE[(int(value) - 1) % len(_PALETTE)]


def checked_color(color: Any) -> tuple[int, int, int]:
    """``color`` as an (r, g, b) of whole numbers in 0..255 (``255.0`` counts as 255); ``ValueError`` naming it
    otherwise, so a colour that Slicer would clip or reject never reaches a manifest."""
    try:
        channels = [float(c) for c in color] if not isinstance(color, (str, bytes)) else []
    except (TypeError, ValueError):
        channels = []
    if len(channels) != 3 or any(not c.is_integer() or not 0 <= c <= 255 for c in channels):
        raise ValueError(f"colour {color!r} is not three whole numbers in 0..255 (r g b)")
    return tuple(int(c) for c in channels)


@dataclass
class LabelEntry:
    """One structure: its integer value in label maps, display name, RGB colour (0-255), terminology string."""

    value: int
    name: str
    color: tuple[int, int, int]
    terminology: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry = {"value": int(self.value), "name": self.name, "color": [int(c) for c in self.color]}
        if self.terminology:
            entry["terminology"] = self.terminology
        return entry


@dataclass
class LabelTable:
    """The structures of a model, background (0) excluded, sorted by value."""

    entries: list[LabelEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.entries = sorted(self.entries, key=lambda e: e.value)

    @property
    def values(self) -> list[int]:
        return [e.value for e in self.entries]

    def names(self) -> dict[int, str]:
        return {e.value: e.name for e in self.entries}

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    @classmethod
    def from_json(cls, items: Iterable[dict[str, Any]]) -> "LabelTable":
        return cls([LabelEntry(int(i["value"]), str(i["name"]), tuple(int(c) for c in i["color"]),
                               i.get("terminology")) for i in items])

    @classmethod
    def defaults(cls, values: Iterable[int]) -> "LabelTable":
        """``Label N`` with palette colours for every non-zero value."""
        return cls([LabelEntry(int(v), f"Label {int(v)}", default_color(v)) for v in values if int(v) != 0])

    def restricted_to(self, values: Iterable[int]) -> "LabelTable":
        """This table's entries for ``values``, with defaults for values it does not name."""
        known = {e.value: e for e in self.entries}
        return LabelTable([known.get(int(v)) or LabelEntry(int(v), f"Label {int(v)}", default_color(v))
                           for v in values if int(v) != 0])


def read_color_table(path: str | os.PathLike) -> LabelTable:
    """Read a Slicer colour table (``.ctbl``/``.txt``) or FreeSurfer LUT: lines ``value name r g b [a]``."""
    entries = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise file_error(path, f"cannot read the colour table ({exc.strerror})") from None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            value, name = int(parts[0]), parts[1]
        except (ValueError, IndexError):
            raise file_error(path, f"line {number} is not 'value name r g b [a]'") from None
        try:
            rgb = checked_color(parts[2:5])
        except ValueError as exc:
            raise file_error(path, f"line {number}: {exc}") from None
        if value != 0:
            entries.append(LabelEntry(value, name, rgb))
    if not entries:
        raise file_error(path, "the colour table names no labels")
    return LabelTable(entries)


def read_label_names_json(path: str | os.PathLike) -> LabelTable:
    """Read ``{"1": "name", ...}``, ``{"1": {"name": ..., "color": [r, g, b]}}`` or a list of label entries."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise file_error(path, f"cannot read the label names as JSON ({exc.__class__.__name__})") from None
    try:
        items = ({**item} for item in data) if isinstance(data, list) else \
            ({"value": key, **({"name": item} if isinstance(item, str) else item)} for key, item in data.items())
        entries = [(int(item["value"]), item) for item in items]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise file_error(path, "label names must map label values to names (see --help)") from None
    table = []
    for value, item in entries:
        if value == 0:
            continue
        try:
            color = checked_color(item.get("color", default_color(value)))
        except ValueError as exc:
            raise file_error(path, f"label {value}: {exc}") from None
        terminology = item.get("terminology")
        if not 0 < value <= 65535 or not isinstance(terminology, (str, type(None))):
            raise file_error(path, f"label {value}: values lie in 1..65535 and a terminology is a text")
        table.append(LabelEntry(value, str(item.get("name", f"Label {value}")), color, terminology))
    return LabelTable(table)


def read_label_table(path: str | os.PathLike) -> LabelTable:
    """A label table from a ``.json`` names file or a colour-table file, chosen by suffix."""
    if str(path).lower().endswith(".json"):
        return read_label_names_json(path)
    return read_color_table(path)
