"""Evaluation reports (JSON) of both methods, written atomically and carrying the engine's mark, so running an
evaluation again may replace its own report but never a JSON file of the user's (a label table, a manifest)."""

from __future__ import annotations

import os
from pathlib import Path

from distillseg.contract.atomic import atomic_file
from distillseg.contract.outputs import marked_file, write_json

REPORT = marked_file("an evaluation report", "report")


def write_report(path: str | os.PathLike, report: dict) -> Path:
    """Write ``report`` as JSON at ``path`` (a ``"written_by"`` mark first, then the report's keys)."""
    path = Path(path)
    with atomic_file(path, REPORT) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        write_json(handle, report, "report")
    return path
