"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON; and what resuming means.

A checkpoint folder ``<out>.checkpoint/`` beside the final bundle holds ``state.safetensors`` (network weights and
optimizer moments, flattened to ``"<group>/<key>"`` names) and ``state.json`` (step counters, optimizer
hyper-parameters, and under ``"job"`` what identifies the job: its options and inputs). It is written atomically,
so a kill leaves the previous checkpoint intact.

Both methods resume the same way (``open_checkpoint``): ``--resume`` continues from the checkpoint and is refused
in one sentence when there is none or it belongs to another job; without ``--resume`` a training starts over and
its old checkpoint goes. ``training_output`` is the lock and clean-up every training holds around its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from distillseg.common.tensor_files import save_tensors
from distillseg.contract.atomic import OutputLock, atomic_directory, remove_stale_temporaries
from distillseg.contract.errors import file_error
from distillseg.contract.outputs import CHECKPOINT
from distillseg.contract.paths import checkpoint_path


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
    flat = {f"{group}/{key}": value for group, group_tensors in tensors.items() for key, value in group_tensors.items()}
    with atomic_directory(path, CHECKPOINT) as tmp:
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


def open_checkpoint(path: str | os.PathLike, resume: bool, job: Any, is_main: bool = True
                    ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]] | None:
    """The checkpoint to continue from: with ``resume``, the one at ``path`` made by the same ``job`` (a JSON-able
    key: options and inputs), refused in one sentence when there is none or another job made it; without, None,
    and the old checkpoint (if any) is removed by rank 0, since the training starts over."""
    path = Path(path)
    if resume:
        loaded = load_checkpoint(path)
        if loaded is None:
            raise file_error(path, "there is no checkpoint to resume from; start without --resume")
        if loaded[1].get("job") != json.loads(json.dumps(job)):
            raise file_error(path, "checkpoint was made with other inputs or options; start without --resume")
        return loaded
    if is_main and path.exists():
        shutil.rmtree(path)
    return None


@contextlib.contextmanager
def training_output(out: str | os.PathLike, is_main: bool = True):
    """Around a training writing the bundle ``out``: rank 0 holds its ``OutputLock`` and first removes what a killed
    writer left (of the bundle and of a checkpoint being saved); other ranks never write."""
    if not is_main:
        yield
        return
    with OutputLock(out):
        remove_stale_temporaries(out)
        remove_stale_temporaries(checkpoint_path(out))
        yield
