"""What a person reads about a model bundle: a few lines from its manifest.

``distillseg model info`` prints these lines and the Slicer modules show them in their model list, so both say the
same thing; torch-free like the rest of ``distillseg.contract``. The lines hold nothing the manifest does not: the
inputs a model was trained from are counted by role (bundles record them by content hash, never by path).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from distillseg.contract.labels import LabelTable
from distillseg.contract.manifest import LAP, ONESHOT, method_title

MAX_NAMES_SHOWN = 8  # a brain model has 30 structures: the list stays one line


def _structures(manifest: dict[str, Any]) -> str:
    names = [entry.name for entry in LabelTable.from_json(manifest.get("labels", [])).entries]
    shown = ", ".join(names[:MAX_NAMES_SHOWN]) + (f", … ({len(names)} in all)" if len(names) > MAX_NAMES_SHOWN else "")
    return f"Structures: {shown or 'none'}"


def _oneshot_training(training: dict[str, Any]) -> list[str]:
    roles = Counter(str(record.get("role", "input")) for record in training.get("inputs", [])
                    if isinstance(record, dict))
    lines = []
    if roles:
        lines.append("Trained from: " + ", ".join(f"{count} {role}" for role, count in roles.items())
                     + " (recorded by SHA-256, not by name)")
    seconds = training.get("seconds")
    total = sum(v for v in seconds.values() if isinstance(v, (int, float))) if isinstance(seconds, dict) else 0
    if training.get("device"):
        lines.append(f"Trained on: {training['device']}, {training.get('precision', 'fp32')}"
                     + (f", {total / 60:.1f} min" if total else ""))
    return lines


def _lap_training(manifest: dict[str, Any]) -> list[str]:
    history = [entry for entry in manifest.get("history", []) if isinstance(entry, dict)]
    lines = [f"Version: step {manifest.get('step', 0)} ({len(history)} training step(s) recorded)"]
    for entry in history:
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        added = ", ".join(str(name) for name in entry.get("classes_added", []))
        lines.append(f"  step {entry.get('step')}: {entry.get('strategy', '?')}, learned {added or 'nothing new'} "
                     f"from {data.get('frames', '?')} frames of {data.get('patients', '?')} patient(s)")
    if manifest.get("note"):
        lines.append(f"Note: {manifest['note']}")
    return lines


def _folder_size(folder: Path) -> str:
    files = [path for path in folder.iterdir() if path.is_file()]
    size = sum(path.stat().st_size for path in files)
    return f"Size: {size / 2**20:.1f} MB in {len(files)} files"


def summary_lines(manifest: dict[str, Any], folder: str | os.PathLike | None = None) -> list[str]:
    """The model's method, structures, training data, creation and software versions, and (with ``folder``) its
    size on disk."""
    lines = [f"Method: {method_title(manifest.get('method'))}", _structures(manifest)]
    training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
    if training.get("description"):
        lines.append(f"Description: {training['description']}")
    if manifest.get("method") == ONESHOT:
        lines += _oneshot_training(training)
    elif manifest.get("method") == LAP:
        lines += _lap_training(manifest)
    if manifest.get("created"):
        lines.append(f"Created: {manifest['created']}")
    software = manifest.get("software")
    if isinstance(software, dict) and software:
        lines.append("Made with: " + ", ".join(f"{name} {version}" for name, version in software.items())
                     + f" (bundle format {manifest.get('format_version', '?')})")
    if folder is not None and Path(folder).is_dir():
        lines.append(_folder_size(Path(folder)))
    return lines
