"""Optional pretrained weights for the segmenter's ResNet encoder (2D, ImageNet), read from safetensors only.

``spec`` is a local ``.safetensors`` file holding a torchvision/timm-style ResNet state dict (``conv1.weight``,
``layer1.0.conv1.weight``, …, ``fc.*`` ignored; a ``encoder.`` or ``backbone.`` prefix is stripped), or
``imagenet``: timm's ResNet-18/34 ImageNet weights, downloaded once into ``~/.cache/distillseg`` (or
``$DISTILLSEG_CACHE``) and read from there afterwards. Nothing here is needed by the tests or by a machine without
internet: without ``--encoder-weights`` the encoder starts from random weights.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import torch

from distillseg.contract.atomic import atomic_file
from distillseg.contract.outputs import NEW_FILE
from distillseg.contract.errors import UserError, file_error

_IMAGENET_URLS = {
    "resnet18": "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors",
    "resnet34": "https://huggingface.co/timm/resnet34.a1_in1k/resolve/main/model.safetensors",
}


def cache_folder() -> Path:
    return Path(os.environ.get("DISTILLSEG_CACHE", Path.home() / ".cache" / "distillseg"))


def imagenet_weights_file(backbone: str) -> Path:
    """The cached ImageNet weights of ``backbone``, downloaded on first use."""
    if backbone not in _IMAGENET_URLS:
        raise UserError(f"No ImageNet weights are known for backbone '{backbone}'; "
                        f"use one of {', '.join(_IMAGENET_URLS)} or give a .safetensors file.")
    target = cache_folder() / f"{backbone}_imagenet.safetensors"
    if not target.is_file():
        try:
            with atomic_file(target, NEW_FILE) as tmp, \
                    urllib.request.urlopen(_IMAGENET_URLS[backbone], timeout=60) as reply:
                tmp.write_bytes(reply.read())
        except OSError as exc:
            raise UserError(f"Could not download the ImageNet encoder weights ({exc}); download "
                            f"{_IMAGENET_URLS[backbone]} yourself and pass the file to --encoder-weights.") from None
    return target


def load_encoder_weights(encoder: torch.nn.Module, spec: str, backbone: str) -> int:
    """Copy matching tensors into ``encoder``; returns how many were loaded. Refuses a file that matches nothing."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = imagenet_weights_file(backbone) if spec == "imagenet" else Path(spec)
    if not path.is_file():
        raise file_error(path, "encoder weights file does not exist")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise file_error(path, f"not a readable safetensors file ({exc})") from None
    own = encoder.state_dict()
    matched = {}
    for key, value in state.items():
        for prefix in ("", "encoder.", "backbone.", "model."):
            if key.startswith(prefix) and key[len(prefix):] in own:
                name = key[len(prefix):]
                if own[name].shape != value.shape:
                    raise file_error(path, f"tensor '{key}' has shape {tuple(value.shape)}, the {backbone} encoder "
                                           f"needs {tuple(own[name].shape)}")
                matched[name] = value
                break
    if not matched:
        raise file_error(path, f"holds no tensor of a 2D {backbone} encoder (expected names like conv1.weight)")
    encoder.load_state_dict(matched, strict=False)
    return len(matched)
