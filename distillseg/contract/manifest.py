"""A model bundle's manifest, and the check that its weight files are the ones it was written with.

A bundle is a folder holding ``manifest.json`` and one safetensors file per network::

    MODEL_DIR/
      manifest.json       {"format_version": 1, "method": "oneshot" | "lap", "labels": [...],
                           "weights": {"student": {"file": "student.safetensors", "sha256": "<64 hex digits>"}}, ...}
      student.safetensors

Both sides read manifests with ``read_manifest`` and check weights with ``verify_weights`` / ``weight_file``: the
engine before it loads a network, the Slicer model store when it lists, imports or exports a model (without torch).
``FORMAT_VERSION`` goes up when a bundle written by a newer engine could be misread by an older one; readers refuse
versions newer than their own.

What a manifest must hold is one JSON Schema, ``manifest_schema.SCHEMA``: data, here, so both sides share it. The
contract needs only the standard library (Slicer's Python has no ``jsonschema``), so its own checks are what the
Slicer side relies on to list, import and export models, which never build a network from a manifest:
``read_manifest`` (readable JSON, a ``method``, a ``format_version`` it understands, of the right method) and
``verify_weights`` (every listed weight file present, a plain name inside the folder, matching its SHA-256). The
engine, which depends on ``jsonschema``, validates the whole manifest against the schema
(``distillseg.common.manifest_validation``) before any weight file is opened, so a damaged model is refused in one
sentence by the first job that uses it.

The methods have one name each in code, manifests and on the command line (``oneshot``, ``lap``); ``METHOD_TITLES``
gives what a person reads (the Slicer module's name).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from distillseg.contract.errors import UserError, file_error

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
ONESHOT = "oneshot"
LAP = "lap"
METHOD_TITLES = {ONESHOT: "OneShotSeg (3D one-shot)", LAP: "IncrementalLap (laparoscopic frames)"}


def sha256_of(path: str | os.PathLike) -> str:
    """The file's SHA-256 as 64 lowercase hex digits (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def method_title(method: Any) -> str:
    return METHOD_TITLES.get(method, str(method)) if isinstance(method, str) else str(method)


def damaged_manifest(shown: str | os.PathLike, problem: str) -> UserError:
    """The sentence for a manifest that is wrong in itself: ``problem``, and what to do about it."""
    return file_error(shown, f"{problem} (the manifest was edited or damaged; export the model again from where it "
                             "was made)")


def read_manifest(folder: str | os.PathLike, method: str | None = None,
                  shown: str | os.PathLike | None = None) -> dict[str, Any]:
    """The bundle's manifest, checked: readable JSON with a ``method`` and a ``format_version`` this code reads,
    and (when ``method`` is given) of that method. ``UserError`` otherwise, naming ``shown`` (e.g. the zip a bundle
    is being imported from) when given, else the folder or its manifest. The engine then validates it against
    ``SCHEMA`` (see the module docstring)."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise file_error(shown or folder, "model folder does not exist" if not folder.exists() else
                         "is a file, not a model folder (a model is the folder that holds manifest.json)")
    if not path.is_file():
        raise file_error(shown or folder, f"not a model bundle (no {MANIFEST} in the folder)")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise file_error(shown or path, f"manifest is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict) or "method" not in manifest or "format_version" not in manifest:
        raise file_error(shown or path, "manifest lacks 'method' or 'format_version'")
    version = manifest["format_version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise file_error(shown or path, f"model format version {version!r} is not a positive whole number "
                                        "(the manifest was edited or damaged)")
    if version > FORMAT_VERSION:
        raise file_error(shown or path, f"model format version {version} is newer than this distillseg "
                                        f"understands ({FORMAT_VERSION}); update the extension")
    if method is not None and manifest["method"] != method:
        raise file_error(shown or folder, f"this is a {method_title(manifest['method'])} model, not a "
                                          f"{method_title(method)} model")
    return manifest


def _problem(folder: Path, file_name: str, shown, problem: str) -> UserError:
    if shown:
        return file_error(shown, f"weight file '{file_name}' {problem}")
    return file_error(folder / file_name, f"weight file {problem}")


def weight_file(folder: str | os.PathLike, manifest: dict[str, Any], name: str,
                shown: str | os.PathLike | None = None) -> Path:
    """The path of network ``name``'s weights, once checked: listed, a plain file name inside the folder, present,
    and matching its SHA-256 in the manifest (``UserError`` otherwise)."""
    folder = Path(folder)
    weights = manifest.get("weights")
    entry = weights.get(name) if isinstance(weights, dict) else None
    if entry is None:
        raise file_error(shown or folder, f"the model has no weights named '{name}'")
    file_name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(file_name, str) or not file_name or PurePosixPath(file_name).name != file_name \
            or Path(file_name).name != file_name or file_name in (".", ".."):
        raise file_error(shown or folder / MANIFEST, f"weight file {file_name!r} is not a plain file name inside "
                                                     "the model folder")
    path = folder / file_name
    if not path.is_file():
        raise _problem(folder, file_name, shown, "listed in the manifest is missing")
    if sha256_of(path) != entry.get("sha256"):
        raise _problem(folder, file_name, shown, "does not match the SHA-256 in manifest.json (corrupted or altered)")
    return path


def verify_weights(folder: str | os.PathLike, manifest: dict[str, Any],
                   shown: str | os.PathLike | None = None) -> None:
    """Every weight file the manifest lists passes ``weight_file``; a manifest listing none is refused."""
    weights = manifest.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise file_error(shown or Path(folder) / MANIFEST, "the manifest lists no weight files")
    for name in weights:
        weight_file(folder, manifest, name, shown)
