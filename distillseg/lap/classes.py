"""The class registry of an IncrementalLap model: value -> structure name, colour and the step that introduced it.

Values are assigned in the order structures are learned (1, 2, 3, … ; 0 is background) and never renumbered, so a
segment ID in Slicer stays valid across model versions. In the manifest the registry is written twice: as the
engine-wide label table (``"labels"``, see ``distillseg.contract.labels``) and as ``"classes"`` with the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from distillseg.contract.errors import UserError
from distillseg.contract.labels import LabelEntry, LabelTable, default_color

# The 11 structures of the Dresden Surgical Anatomy Dataset, with display colours close to their look in surgery.
DSAD_STRUCTURES = {
    "abdominal_wall": (222, 160, 150),
    "colon": (200, 140, 60),
    "inferior_mesenteric_artery": (220, 40, 40),
    "intestinal_veins": (60, 60, 200),
    "liver": (140, 40, 40),
    "pancreas": (240, 200, 110),
    "small_intestine": (250, 150, 170),
    "spleen": (110, 30, 90),
    "stomach": (190, 110, 120),
    "ureter": (250, 250, 200),
    "vesicular_glands": (150, 200, 100),
}


@dataclass(frozen=True)
class ClassEntry:
    """One learned structure."""

    value: int
    name: str
    color: tuple[int, int, int]
    step: int
    terminology: str | None = None

    def to_json(self) -> dict[str, Any]:
        entry = {"value": self.value, "name": self.name, "color": list(self.color), "step": self.step}
        if self.terminology:
            entry["terminology"] = self.terminology
        return entry


class ClassRegistry:
    """Ordered structures of a model; ``entries[i].value == i + 1``."""

    def __init__(self, entries: Iterable[ClassEntry] = ()):
        self.entries = sorted(entries, key=lambda e: e.value)
        for index, entry in enumerate(self.entries, 1):
            if entry.value != index:
                raise ValueError(f"class values must be 1..N in order; got {entry.value} at position {index}")

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def num_outputs(self) -> int:
        """Segmentation head outputs: background + one per structure."""
        return len(self.entries) + 1

    def value_of(self, name: str) -> int:
        for entry in self.entries:
            if entry.name == name:
                return entry.value
        raise KeyError(name)

    def values_of_step(self, step: int) -> list[int]:
        return [e.value for e in self.entries if e.step == step]

    def colors(self) -> dict[int, tuple[int, int, int]]:
        return {e.value: e.color for e in self.entries}

    def extended(self, names: Iterable[str], step: int, colors: dict[str, tuple[int, int, int]] | None = None
                 ) -> "ClassRegistry":
        """A new registry with ``names`` appended as the classes of ``step`` (existing values unchanged)."""
        entries = list(self.entries)
        for name in names:
            if name in self.names or any(e.name == name for e in entries[len(self.entries):]):
                raise UserError(f"The model already knows the structure '{name}'; name only new structures.")
            value = len(entries) + 1
            color = (colors or {}).get(name) or DSAD_STRUCTURES.get(name) or default_color(value)
            entries.append(ClassEntry(value, name, tuple(int(c) for c in color), step))
        return ClassRegistry(entries)

    def labels_json(self) -> list[dict[str, Any]]:
        """The engine-wide label table (value, name, colour, terminology) for the manifest's ``"labels"``."""
        return LabelTable([LabelEntry(e.value, e.name, e.color, e.terminology) for e in self.entries]).to_json()

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    @classmethod
    def from_json(cls, items: Iterable[dict[str, Any]]) -> "ClassRegistry":
        return cls(ClassEntry(int(i["value"]), str(i["name"]), tuple(int(c) for c in i["color"]), int(i["step"]),
                              i.get("terminology")) for i in items)
