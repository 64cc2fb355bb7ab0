"""The JSON Schema (draft 2020-12) of a model bundle's ``manifest.json``, for both methods, as plain data.

It is what the engine reads from a manifest, with the types and ranges the networks can be built from: network
configurations allow only the keys the networks take (they are passed on as keyword arguments), label values and
colours have their ranges, weight entries name a file and its SHA-256. Keys the engine only records (training
curves, history, software versions) are left free. The engine checks a manifest against it with the
``jsonschema`` library (``distillseg.common.manifest_validation``) before any weight file is opened; this module
is plain data, so the contract stays importable where ``jsonschema`` is not installed.
"""

from __future__ import annotations

_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_NUMBER = {"type": "number"}


def _ints(low: int, high: int) -> dict:
    return {"type": "integer", "minimum": low, "maximum": high}


def _array(items: dict, low: int, high: int | None = None, **extra) -> dict:
    schema = {"type": "array", "items": items, "minItems": low, **extra}
    if high is not None:
        schema["maxItems"] = high
    return schema


def _object(properties: dict, required: tuple[str, ...] = (), closed: bool = False) -> dict:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    if closed:  # passed to a constructor as keyword arguments: an unknown key would be a TypeError
        schema["additionalProperties"] = False
    return schema


_CHANNELS = _array(_ints(1, 1024), 1, 8)
_COLOR = _array(_ints(0, 255), 3, 3)
_LABEL = _object({"value": _ints(1, 65535), "name": {"type": "string", "minLength": 1}, "color": _COLOR,
                  "terminology": {"type": "string"}}, ("value", "name", "color"))
# Whether a file name stays inside the folder and matches its SHA-256 is ``manifest.weight_file``'s to say: it runs
# on both sides, with or without this schema.
_WEIGHT = _object({"file": {"type": "string", "minLength": 1}, "sha256": {"type": "string"}}, ("file", "sha256"))


def _weights(*names: str) -> dict:
    return {"type": "object", "additionalProperties": _WEIGHT, "minProperties": 1, "required": list(names)}


_ONESHOT = _object({
    "class_values": _array(_ints(0, 65535), 2, 1025, uniqueItems=True, prefixItems=[{"const": 0}]),
    "networks": _object({
        "student": _object({"in_channels": _ints(1, 1), "out_channels": _ints(2, 1025), "channels": _CHANNELS,
                            "residual": _BOOL, "decoder_subunits": {"enum": [1, 2]}, "up_kernel": {"enum": [2, 3]},
                            "deep_supervision": _ints(0, 3), "prior_channels": _ints(0, 1025)},
                           ("in_channels", "out_channels", "channels"), closed=True),
        "augmenter": _object({"encoder_channels": _CHANNELS, "decoder_channels": _ints(1, 1024),
                              "embedding": _ints(1, 4096), "half_res": _BOOL, "diffeomorphic": _BOOL,
                              "integration_steps": _ints(0, 32), "refine_convs": _ints(0, 16)}, closed=True),
    }, ("student", "augmenter")),
    "preprocessing": _object({
        "grid": _object({"shape": _array(_ints(1, 4096), 3, 3),
                         "affine": _array(_array(_NUMBER, 4, 4), 4, 4)}, ("shape", "affine")),
        "intensity": _object({"mode": {"enum": ["percentile", "window"]}, "low": _NUMBER, "high": _NUMBER},
                             ("mode", "low", "high")),
        "prealign": _BOOL,
        "atlas_prior_sigma": {"type": "number", "minimum": 0, "maximum": 100},  # working-grid voxels
    }, ("grid", "intensity")),
    "training": _object({"options": _object({
        # what `segment` reads to refine a scan's deformation as in training
        "augmenter": _object({"refine_iterations": _ints(0, 100_000),
                              "refine_lr": {"type": "number", "exclusiveMinimum": 0},
                              "window": _ints(1, 255), "smooth_weight": {"type": "number", "minimum": 0},
                              "refine_smooth_weight": {"oneOf": [{"type": "null"},
                                                                 {"type": "number", "minimum": 0}]}}),
        "synthesis": _object({"patch": {"oneOf": [{"type": "null"}, _array(_ints(1, 4096), 3, 3)]}}),
    })}),
    "weights": _weights("student", "augmenter", "atlas"),
}, ("class_values", "labels", "networks", "preprocessing", "weights"))

_LAP = _object({
    "network": _object({
        "segmenter": _object({"backbone": {"enum": ["resnet10", "resnet18", "resnet34"]},
                              "decoder_channels": _array(_ints(1, 1024), 5, 5), "embedding_level": _ints(0, 4)},
                             ("backbone", "decoder_channels"), closed=True),
        "outputs": _ints(2, 256),
    }, ("segmenter", "outputs")),
    "classes": _array(_object({**_LABEL["properties"], "step": _ints(0, 10_000)},
                              ("value", "name", "color", "step")), 1, 255),
    "preprocessing": _object({"size": _array({"type": "integer", "minimum": 32, "maximum": 4096,
                                              "multipleOf": 32}, 2, 2)}, ("size",)),
    "diffusion": _object({
        "config": _object({"size": _array(_ints(8, 4096), 2, 2), "channels": _CHANNELS,
                           "num_res_blocks": _ints(1, 8), "num_head_channels": _ints(1, 1024),
                           "train_timesteps": _ints(1, 10_000), "sample_steps": _ints(1, 10_000)},
                          ("size", "channels", "num_res_blocks", "num_head_channels", "train_timesteps",
                           "sample_steps"), closed=True),
        "steps": _array(_ints(0, 10_000), 0, uniqueItems=True),
    }, ("config", "steps")),
    "step": _ints(0, 10_000),
    "versions": _array(_object({"step": _ints(0, 10_000), "weights": {"type": "string"}}, ("step", "weights")), 1),
    "history": _array(_object({"step": _ints(0, 10_000)}, ("step",)), 0),
    "synthetic_training_data": _BOOL,
    "weights": _weights("segmenter"),
}, ("network", "labels", "classes", "preprocessing", "diffusion", "step", "versions", "weights"))

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "distillseg model bundle manifest",
    "type": "object",
    "required": ["format_version", "method", "labels", "weights"],
    "properties": {"format_version": {"type": "integer", "minimum": 1}, "method": {"enum": ["oneshot", "lap"]},
                   "labels": _array(_LABEL, 0), "created": {"type": "string"},
                   "software": {"type": "object", "additionalProperties": {"type": "string"}}},
    "allOf": [{"if": {"properties": {"method": {"const": "oneshot"}}}, "then": _ONESHOT},
              {"if": {"properties": {"method": {"const": "lap"}}}, "then": _LAP}],
}
