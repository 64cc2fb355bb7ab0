"""The engine's label tables (value -> name, colour 0-255, terminology), reused here rather than re-implemented.

``distillseg.common.labels`` is plain Python (no torch, no numpy), so importing it in Slicer's GUI process is cheap.
"""

from .engine import ensureEngineImportable

ensureEngineImportable()

from distillseg.common.labels import LabelEntry, LabelTable  # noqa: E402

__all__ = ["LabelEntry", "LabelTable"]
