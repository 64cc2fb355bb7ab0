"""Model folders that are damaged or edited by hand: every case runs the real CLI on a copy of a trained bundle and
must be refused in one sentence naming the manifest (or the weight file) and the key (or tensor) that is wrong,
before any network is built from it.

The manifest is checked against one JSON Schema (``distillseg.contract.manifest_schema``) with ``jsonschema``;
what the schema cannot say (the parts agreeing with each other) and every weight file's tensors (names and shapes,
from the safetensors header) are checked next. Missing keys, wrong types, a lap model without its head and weights
of the wrong shape ended in ``KeyError``, ``TypeError`` or a PyTorch size-mismatch dump before this file's commit.
"""

from __future__ import annotations

import hashlib
import json
import shutil

from safetensors.torch import load_file, save_file

from bad_input_env import env  # noqa: F401  (the matrix's fixture)
from bad_input_env import copy_model, matrix_test
from cli_contract import Invocation

MODELS = "models"


def _segment(env, tmp, model):
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=model),
                      names=model / "manifest.json", outputs=[tmp / "o.nii.gz"])


def _lap_segment(env, tmp, model):
    return Invocation(env.lap_segment(env.frame(), tmp / "o.png", model=model), names=model / "manifest.json",
                      outputs=[tmp / "o.png"])


def _edited(env, tmp, change, method="oneshot"):
    model = copy_model(env.oneshot.model if method == "oneshot" else env.lap.model, tmp / "edited model", change)
    return _segment(env, tmp, model) if method == "oneshot" else _lap_segment(env, tmp, model)


def _expect(invocation: Invocation, *fragments: str) -> Invocation:
    invocation.fragments = fragments
    return invocation


def _rewrite_weights(model, name: str, change) -> None:
    """Change the tensors of weight file ``name`` and record its new SHA-256 (as someone mixing files would)."""
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    path = model / manifest["weights"][name]["file"]
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    manifest["weights"][name]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (model / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def manifest_without_preprocessing(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.pop("preprocessing")), "top level: lacks 'preprocessing'")


def manifest_preprocessing_as_text(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.update(preprocessing="2 mm")),
                   "key 'preprocessing': must be of type object")


def manifest_weight_file_as_a_number(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["weights"]["student"].update(file=5)),
                   "key 'weights.student.file': must be of type string")


def manifest_colour_as_a_word(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["labels"][0].update(color="red")),
                   "key 'labels.0.color': must be of type array")


def manifest_class_values_as_strings(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.update(class_values=[0, *map(str, m["class_values"][1:])])),
                   "key 'class_values.", "must be of type integer (found str)")


def manifest_weights_as_a_list(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.update(weights=list(m["weights"].values()))),
                   "key 'weights': must be of type object")


def manifest_format_version_as_text(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.update(format_version="1")),
                   "model format version '1' is not a positive whole number")


def manifest_colour_out_of_range(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["labels"][0].update(color=[300, 0, 0]), "lap"),
                   "key 'labels.0.color.0': 300 is greater than the maximum of 255")


def manifest_unknown_network_option(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["networks"]["student"].update(dropout=0.5)),
                   "Additional properties are not allowed ('dropout' was unexpected)")


def manifest_student_outputs_disagree(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["networks"]["student"].update(out_channels=9, prior_channels=9)),
                   "the student has 9 outputs but class_values lists 4 classes")


def manifest_singular_working_grid(env, tmp):
    def flatten(manifest):
        manifest["preprocessing"]["grid"]["affine"][2] = [0.0, 0.0, 0.0, 1.0]

    return _expect(_edited(env, tmp, flatten), "voxel-to-world matrix is singular")


def lap_manifest_without_classes(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.pop("classes"), "lap"), "top level: lacks 'classes'")


def lap_manifest_outputs_disagree(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["network"].update(outputs=7), "lap"),
                   "the segmenter has 7 outputs but the manifest names 2 structures")


def lap_classes_numbered_with_a_gap(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m["classes"][1].update(value=3), "lap"), "class values must be 1..N")


def lap_version_without_its_weights(env, tmp):
    return _expect(_edited(env, tmp, lambda m: m.update(step=1, versions=[{"step": 0, "weights": "segmenter_step0"},
                                                                          {"step": 1, "weights": "segmenter"}]), "lap"),
                   "segmenter_step0 not listed")


def lap_model_without_its_head(env, tmp):
    model = shutil.copytree(env.lap.model, tmp / "headless model")
    _rewrite_weights(model, "segmenter", lambda t: [t.pop(k) for k in ("head.weight", "head.bias")])
    invocation = _lap_segment(env, tmp, model)
    invocation.names = model / "segmenter.safetensors"
    return _expect(invocation, "lacks the tensor 'head.weight'")


def weights_of_the_wrong_shape(env, tmp):
    model = shutil.copytree(env.oneshot.model, tmp / "mixed model")
    name = "decoders.0.conv.unit0.conv.weight"
    _rewrite_weights(model, "student", lambda t: t.update({name: t[name][:, :, :1].contiguous()}))
    invocation = _segment(env, tmp, model)
    invocation.names = model / "student.safetensors"
    return _expect(invocation, f"tensor '{name}' has shape 128x256x1x3x3 but", "needs 128x256x3x3x3")


def model_file_given_as_the_model(env, tmp):
    weights = env.oneshot.model / "student.safetensors"
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=weights),
                      fragments=("is a file, not a model folder",), names=weights, outputs=[tmp / "o.nii.gz"])


def model_info_of_a_damaged_manifest(env, tmp):
    model = copy_model(env.lap.model, tmp / "edited model", lambda m: m.update(step="last"))
    return Invocation(["model", "info", model], fragments=("key 'step': must be of type integer",),
                      names=model / "manifest.json")


def export_bundle_of_a_damaged_manifest(env, tmp):
    model = copy_model(env.lap.model, tmp / "edited model", lambda m: m["network"].update(outputs="three"))
    return Invocation(["model", "export-bundle", model, tmp / "bundle", "--progress", "none"],
                      fragments=("key 'network.outputs': must be of type integer",), names=model / "manifest.json",
                      outputs=[tmp / "bundle"])


def export_bundle_of_an_inconsistent_oneshot_model(env, tmp):
    model = copy_model(env.oneshot.model, tmp / "edited model",
                       lambda m: m["networks"]["student"].update(out_channels=9, prior_channels=9))
    return Invocation(["model", "export-bundle", model, tmp / "bundle", "--progress", "none"],
                      fragments=("the student has 9 outputs but class_values lists 4 classes",),
                      names=model / "manifest.json", outputs=[tmp / "bundle"])


def export_bundle_of_a_missing_model(env, tmp):
    return Invocation(["model", "export-bundle", tmp / "no model", tmp / "bundle", "--progress", "none"],
                      fragments=("model folder does not exist",), names=tmp / "no model", outputs=[tmp / "bundle"])


CASES = {MODELS: [manifest_without_preprocessing, manifest_preprocessing_as_text, manifest_weight_file_as_a_number,
                  manifest_colour_as_a_word, manifest_class_values_as_strings, manifest_weights_as_a_list,
                  manifest_format_version_as_text, manifest_colour_out_of_range, manifest_unknown_network_option,
                  manifest_student_outputs_disagree, manifest_singular_working_grid, lap_manifest_without_classes,
                  lap_manifest_outputs_disagree, lap_classes_numbered_with_a_gap, lap_version_without_its_weights,
                  lap_model_without_its_head, weights_of_the_wrong_shape, model_file_given_as_the_model,
                  model_info_of_a_damaged_manifest, export_bundle_of_a_damaged_manifest,
                  export_bundle_of_an_inconsistent_oneshot_model, export_bundle_of_a_missing_model]}
test_bad_input = matrix_test(CASES)
