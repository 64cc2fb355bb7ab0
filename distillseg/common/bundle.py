"""Model bundles: a folder with ``manifest.json`` and one safetensors file per network, never a pickle.

Layout::

    MODEL_DIR/
      manifest.json          format_version, method, networks' configs, labels, preprocessing, training summary,
                             versions of the software that made it, and a SHA-256 per weight file
      <name>.safetensors     e.g. student.safetensors, diffusion.safetensors

A bundle is written whole through ``atomic_directory`` and loaded with ``safetensors`` only (a model file from
someone else cannot run code); every weight file's SHA-256 is checked against the manifest before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillseg.common.atomic import atomic_directory
from distillseg.common.bundle_format import FORMAT_VERSION, MANIFEST, METHOD_TITLES
from distillseg.common.errors import UserError, file_error


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def software_versions() -> dict[str, str]:
    """Versions recorded in every manifest, so a result can be traced to the code that made it."""
    import monai
    import numpy

    from distillseg import __version__

    return {
        "distillseg": __version__,
        "torch": torch.__version__,
        "monai": monai.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def write_bundle_files(folder: Path, manifest: dict[str, Any], weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Write weights and manifest into an existing (temporary) folder; used by ``save_bundle``."""
    from safetensors.torch import save_file

    manifest = dict(manifest)
    manifest["format_version"] = FORMAT_VERSION
    manifest["software"] = software_versions()
    manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    manifest["weights"] = {}
    for name, state in weights.items():
        file_name = f"{name}.safetensors"
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        save_file(tensors, str(folder / file_name))
        manifest["weights"][name] = {"file": file_name, "sha256": sha256_of(folder / file_name)}
    with open(folder / MANIFEST, "w", encoding="utf-8") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=False)
        handle.write("\n")


def save_bundle(path: str | os.PathLike, manifest: dict[str, Any],
                weights: dict[str, dict[str, torch.Tensor]]) -> Path:
    """Write a complete bundle at ``path`` atomically (replacing an older one only when the new one is whole).

    ``manifest`` must contain ``method``; ``weights`` maps a network name to its ``state_dict``.
    """
    if "method" not in manifest:
        raise ValueError("a manifest needs a 'method'")
    path = Path(path)
    with atomic_directory(path) as tmp:
        write_bundle_files(tmp, manifest, weights)
    return path


@dataclass
class Bundle:
    """A loaded bundle: its folder and manifest; weights are read on demand with ``load_weights``."""

    path: Path
    manifest: dict[str, Any]

    @property
    def method(self) -> str:
        return self.manifest["method"]

    def weight_names(self) -> list[str]:
        return list(self.manifest.get("weights", {}))

    def load_weights(self, name: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The state dict of network ``name``, after checking its SHA-256 against the manifest."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        entry = self.manifest.get("weights", {}).get(name)
        if entry is None:
            raise file_error(self.path, f"the model has no weights named '{name}'")
        file = self.path / entry["file"]
        if Path(entry["file"]).name != entry["file"]:
            raise file_error(self.path / MANIFEST, f"weight file '{entry['file']}' is not a plain file name inside "
                                                   "the model folder")
        if not file.is_file():
            raise file_error(file, "weight file listed in the manifest is missing")
        if sha256_of(file) != entry.get("sha256"):
            raise file_error(file, "weight file does not match the SHA-256 in manifest.json (corrupted or altered)")
        try:
            return load_file(str(file), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise file_error(file, f"not a readable safetensors file ({exc})") from None


def load_bundle(path: str | os.PathLike, method: str | None = None) -> Bundle:
    """Read and validate ``manifest.json``; with ``method`` given, refuse a bundle of the other method."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise file_error(path, "model folder does not exist")
    if not manifest_path.is_file():
        raise file_error(path, "not a model bundle (no manifest.json in the folder)")
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise file_error(manifest_path, f"manifest is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(manifest, dict) or "method" not in manifest or "format_version" not in manifest:
        raise file_error(manifest_path, "manifest lacks 'method' or 'format_version'")
    version = manifest["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise file_error(
            manifest_path,
            f"model format version {version} is newer than this distillseg understands ({FORMAT_VERSION}); "
            "update the extension",
        )
    if method is not None and manifest["method"] != method:
        have = METHOD_TITLES.get(manifest["method"], manifest["method"])
        want = METHOD_TITLES.get(method, method)
        raise file_error(path, f"this is a {have} model, not a {want} model")
    return Bundle(path=path, manifest=manifest)
