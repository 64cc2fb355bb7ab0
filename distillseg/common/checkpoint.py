"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint folder ``<out>.checkpoint/`` beside the final bundle holds ``state.safetensors`` (network weights and
optimizer moments, flattened to ``"<group>/<key>"`` names) and ``state.json`` (step counters, optimizer
hyper-parameters, the job's options). It is written atomically, so a kill leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from distillseg.contract.atomic import atomic_directory
from distillseg.common.tensor_files import save_tensors
from distillseg.contract.errors import file_error


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (``state/<param>/<key>``) and JSON-able hyper-parameters."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, param_state in state["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"state/{param_id}/{key}"] = value
            else:
                scalars.setdefault(str(param_id), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of ``optimizer_to_flat``: load the state back into ``optimizer``."""
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, param_id, key = name.split("/", 2)
        per_param.setdefault(int(param_id), {})[key] = value
    for param_id, values in meta.get("scalars", {}).items():
        per_param.setdefault(int(param_id), {}).update(values)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
    """Atomically write ``tensors`` (group name -> flat tensor dict) and ``meta`` (JSON) into folder ``path``."""
    flat = {f"{group}/{key}": value.detach().to("cpu").contiguous()
            for group, group_tensors in tensors.items() for key, value in group_tensors.items()}
    with atomic_directory(path) as tmp:
        save_tensors(Path(tmp) / "state.safetensors", flat)
        with open(Path(tmp) / "state.json", "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The checkpoint at ``path`` as (group -> tensors, meta), or None when there is none."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "state.json").is_file():
        return None
    try:
        with open(path / "state.json", encoding="utf-8") as handle:
            meta = json.load(handle)
        flat = load_file(str(path / "state.safetensors"))
    except Exception as exc:  # any damage means the checkpoint cannot be trusted
        raise file_error(path, f"checkpoint is damaged ({exc.__class__.__name__}); delete it to start over") from None
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in flat.items():
        group, key = name.split("/", 1)
        groups.setdefault(group, {})[key] = value
    return groups, meta
