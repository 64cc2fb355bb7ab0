"""Model manifests checked against their JSON Schema (``distillseg.contract.manifest_schema``) with ``jsonschema``,
before any weight file is opened: the engine's side of ``distillseg.contract.manifest``.

A manifest that does not match is refused in one sentence naming the manifest and the first key that is wrong
(``manifest key 'labels.0.color.0': 300 is greater than the maximum of 255``), never a ``KeyError`` or
``TypeError`` later in the code that reads it.
"""

from __future__ import annotations

import os
from typing import Any

from distillseg.contract.errors import UserError
from distillseg.contract.manifest import MANIFEST, damaged_manifest, read_manifest
from distillseg.contract.manifest_schema import SCHEMA


def _where(location) -> str:
    keys = ".".join(str(key) for key in location)
    return f"key '{keys}'" if keys else "top level"


def _problem_of(error) -> str:
    """What a ``jsonschema`` validation error says, short: its own message can quote a whole sub-tree."""
    if error.validator == "required":
        return f"lacks {error.message.split(' is a required')[0]}"
    if error.validator == "type":
        return f"must be of type {error.validator_value} (found {type(error.instance).__name__})"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return message.replace(". ", "; ")


def validate_manifest(manifest: dict[str, Any], shown: str | os.PathLike) -> None:
    """Check ``manifest`` against ``SCHEMA``; ``UserError`` naming ``shown`` and the first key that is wrong."""
    try:
        import jsonschema
    except ImportError:  # a dependency of the engine: missing only from a broken installation
        raise UserError("The engine needs the Python package 'jsonschema' to check model manifests; install the "
                        "extension's dependencies again (pip install jsonschema).") from None

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(SCHEMA).iter_errors(manifest))
    if error is not None:
        raise damaged_manifest(shown, f"manifest {_where(error.absolute_path)}: {_problem_of(error)}")


def read_valid_manifest(folder: str | os.PathLike, method: str | None = None) -> dict[str, Any]:
    """``read_manifest``, then ``validate_manifest``: the manifest of a bundle the engine may build networks from."""
    manifest = read_manifest(folder, method)
    validate_manifest(manifest, os.path.join(folder, MANIFEST))
    return manifest
