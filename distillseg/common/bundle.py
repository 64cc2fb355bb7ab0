"""Model bundles: a folder with ``manifest.json`` and one safetensors file per network, never a pickle.

Layout::

    MODEL_DIR/
      manifest.json          format_version, method, networks' configs, labels, preprocessing, training summary,
                             versions of the software that made it, and a SHA-256 per weight file
      <name>.safetensors     e.g. student.safetensors, diffusion.safetensors

A bundle is written whole through ``atomic_directory`` and loaded with ``safetensors`` only (a model file from
someone else cannot run code). Reading and checking the manifest and each weight file's SHA-256 is the contract's
(``distillseg.contract.manifest``), shared with the Slicer model store; this module adds what needs torch.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from distillseg.common.tensor_files import save_tensors
from distillseg.contract.atomic import atomic_directory
from distillseg.contract.errors import file_error
from distillseg.contract.manifest import FORMAT_VERSION, MANIFEST, read_manifest, sha256_of, weight_file


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
    manifest = dict(manifest)
    manifest["format_version"] = FORMAT_VERSION
    manifest["software"] = software_versions()
    manifest.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    manifest["weights"] = {}
    for name, state in weights.items():
        file_name = f"{name}.safetensors"
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
        save_tensors(folder / file_name, tensors)
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

        file = weight_file(self.path, self.manifest, name)
        try:
            return load_file(str(file), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise file_error(file, f"not a readable safetensors file ({exc})") from None


def load_bundle(path: str | os.PathLike, method: str | None = None) -> Bundle:
    """Read and validate ``manifest.json``; with ``method`` given, refuse a bundle of the other method."""
    return Bundle(path=Path(path), manifest=read_manifest(path, method))
