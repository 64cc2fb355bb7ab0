"""Hand-made model bundles for tests that need a bundle but not a trained network: the smallest manifest each
method's schema accepts (``distillseg.contract.manifest_schema``), written by the engine's own ``save_bundle``.

The weights are whatever the test gives, plus a one-number tensor for every weight the schema requires and the
test does not give, so loaders that only read the manifest and check SHA-256 sums work on them; loaders that build
networks (segment, learn) need a trained bundle (``tiny_models``).
"""

from __future__ import annotations

import numpy as np
import torch

from distillseg.common.bundle import save_bundle

REQUIRED_WEIGHTS = {"oneshot": ("student", "augmenter", "atlas"), "lap": ("segmenter",)}
_LABELS = [{"value": 1, "name": "liver", "color": [200, 100, 50]}]


def manifest_fields(method: str, labels: list | None = None) -> dict:
    """The keys a ``method`` manifest needs besides those ``save_bundle`` writes (version, software, weights)."""
    labels = _LABELS if labels is None else labels
    if method == "oneshot":
        return {"method": "oneshot", "labels": labels, "class_values": [0, *[entry["value"] for entry in labels]],
                "networks": {"student": {"in_channels": 1, "out_channels": len(labels) + 1, "channels": [4, 8]},
                             "augmenter": {}},
                "preprocessing": {"grid": {"shape": [32, 32, 32], "affine": np.eye(4).tolist()},
                                  "intensity": {"mode": "percentile", "low": 0.5, "high": 99.5}}}
    return {"method": "lap", "labels": labels, "network": {"segmenter": {"backbone": "resnet18",
                                                                         "decoder_channels": [128, 64, 32, 32, 16]},
                                                           "outputs": len(labels) + 1},
            "classes": [{**entry, "step": 0} for entry in labels], "preprocessing": {"size": [64, 64]},
            "diffusion": {"config": {"size": [32, 32], "channels": [8, 16], "num_res_blocks": 1,
                                     "num_head_channels": 8, "train_timesteps": 1000, "sample_steps": 50},
                          "steps": []},
            "step": 0, "versions": [{"step": 0, "weights": "segmenter"}]}


def hand_made_bundle(path, method: str = "oneshot", weights: dict | None = None, labels: list | None = None,
                     **extra):
    """Write a schema-valid ``method`` bundle at ``path`` with ``weights`` (name -> tensors) and ``extra`` keys."""
    weights = dict(weights or {})
    for name in REQUIRED_WEIGHTS[method]:
        weights.setdefault(name, {"w": torch.ones(1)})
    return save_bundle(path, {**manifest_fields(method, labels), **extra}, weights)
