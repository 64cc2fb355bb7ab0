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
from typing import Any, Callable

import torch

from distillseg.common.tensor_files import save_tensors
from distillseg.contract.atomic import atomic_directory
from distillseg.contract.errors import file_error
from distillseg.common.manifest_validation import read_valid_manifest
from distillseg.contract.manifest import FORMAT_VERSION, MANIFEST, sha256_of, weight_file
from distillseg.contract.outputs import bundle_kind


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
        save_tensors(folder / file_name, state)
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
    with atomic_directory(path, bundle_kind(manifest["method"])) as tmp:
        write_bundle_files(tmp, manifest, weights)
    return path


def state_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of the network ``build()`` makes, built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        network = build()
    return {name: tuple(value.shape) for name, value in network.state_dict().items()}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "a scalar"


def check_tensor_shapes(file: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Refuse, naming the first tensor that differs, a safetensors file whose tensors are not exactly ``shapes``
    (read from its header: no weight is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            found = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise file_error(file, f"not a readable safetensors file ({exc})") from None
    missing = [name for name in shapes if name not in found]
    if missing:
        raise file_error(file, f"lacks the tensor '{missing[0]}' ({len(missing)} missing) of the network that "
                               "manifest.json describes; the weights do not belong to this manifest")
    extra = [name for name in found if name not in shapes]
    if extra:
        raise file_error(file, f"holds the tensor '{extra[0]}' that the network manifest.json describes does not "
                               "have; the weights do not belong to this manifest")
    for name, shape in shapes.items():
        if found[name] != tuple(shape):
            raise file_error(file, f"tensor '{name}' has shape {_shape_text(found[name])} but the network "
                                   f"manifest.json describes needs {_shape_text(tuple(shape))}")


@dataclass
class Bundle:
    """A loaded bundle: its folder and validated manifest; weights are read on demand with ``load_weights``."""

    path: Path
    manifest: dict[str, Any]

    @property
    def method(self) -> str:
        return self.manifest["method"]

    def weight_names(self) -> list[str]:
        return list(self.manifest.get("weights", {}))

    def load_weights(self, name: str, device: str | torch.device = "cpu",
                     shapes: dict[str, tuple[int, ...]] | None = None) -> dict[str, torch.Tensor]:
        """The state dict of network ``name``, after checking its SHA-256 against the manifest and, with
        ``shapes`` (tensor name -> shape), that it holds exactly those tensors."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        file = weight_file(self.path, self.manifest, name)
        if shapes is not None:
            check_tensor_shapes(file, shapes)
        try:
            return load_file(str(file), device=str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise file_error(file, f"not a readable safetensors file ({exc})") from None

    def load_network(self, name: str, build: Callable[[], torch.nn.Module], device: str | torch.device = "cpu"
                     ) -> torch.nn.Module:
        """The network ``build()`` makes, with network ``name``'s weights: its tensors are checked against the
        network's (built first on the meta device) before either the weights are read or the network is
        allocated, so a manifest describing a huge network costs nothing."""
        weights = self.load_weights(name, device, state_shapes(build))
        network = build()
        network.load_state_dict(weights)
        return network


def load_bundle(path: str | os.PathLike, method: str | None = None) -> Bundle:
    """Read ``manifest.json`` and validate it against the manifest schema; with ``method`` given, refuse a bundle
    of the other method."""
    return Bundle(path=Path(path), manifest=read_valid_manifest(path, method))
