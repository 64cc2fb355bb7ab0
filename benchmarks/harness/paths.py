"""Where the benchmarks read and write, and how a report names a path.

Reports are committed, so they never show where a checkout happened to live: a path inside the repository is shown
relative to it (``.venv/bin/python``), and a path in the shared data folder next to it as ``../shared/data/…``, the
scripts' default ``--data``. Other paths (the ``/tmp`` scratch folders, a ``--data`` given elsewhere) are shown as
they are.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


def shown(text) -> str:
    """``text`` (a path, or a command-line argument that starts with one, such as ``labels.json:table``) as a
    report shows it: relative to the repository when it lies inside it or in the shared folder next to it."""
    text = str(text)
    for folder, as_shown in ((REPO, ""), (SHARED, "../shared/")):
        prefix = str(folder) + os.sep
        if text.startswith(prefix):
            return as_shown + text[len(prefix):]
    return text
