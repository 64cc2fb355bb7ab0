"""A OneShotSeg model as a MONAI Bundle: the files ``distillseg model export-bundle`` writes for a ``oneshot``
model (``distillseg.common.monai_bundle_export`` checks the paths and writes the folder atomically).

The bundle needs no distillseg: its ``scripts/`` are copies of the engine's own modules (``bundle_runtime`` and
what it imports: ``intensity``, ``prealign``, ``mutual_information``, ``geometry``, ``atlas_prior``, ``windows``,
``unet``, ``tiny_fp32``), so it computes what ``distillseg oneshot segment`` computes with the student predictor in
fp32 (``--precision fp32``), step by step::

    NIfTI scan (X, Y, Z) -> LoadImaged + EnsureChannelFirstd (1, X, Y, Z) -> AlignToAtlasd: normalise to [0, 1],
    affine pre-alignment to the atlas (models/atlas.pt), trilinear resampling onto the working grid (I, J, K), the
    atlas prior's C channels -> (1 [+ C], I, J, K) -> GaussianWindowInferer: the student (models/model.pt) in
    Gaussian-blended windows of its training patch, softmax -> (C, I, J, K) -> LabelsOnScand: back through the
    inverse world map onto the scan's grid, argmax, label values -> SaveImaged <name>_seg.nii.gz

What ``segment`` adds and the bundle does not: its default registration union (``--no-registration-union`` gives
the bundle's labels), ``--keep-largest``, ``--registration-margin``, bf16 autocast, another window size
(``segment`` shrinks its windows when the memory budget needs it; the bundle's ``window`` can be set on the command
line: ``--window "[64, 64, 64]"``), and NRRD or DICOM input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from distillseg.common.bundle import Bundle, load_bundle
from distillseg.common.monai_bundle_export import copy_scripts, evaluator_config, save_tensors, write_config
from distillseg.contract.manifest import ONESHOT
from distillseg.oneshot import (atlas_prior, bundle_runtime, geometry, intensity, mutual_information, prealign,
                                tiny_fp32, unet, windows)
from distillseg.oneshot.predict import check_consistent

# Dependencies first, each module after those it imports.
MODULES = [tiny_fp32, intensity, geometry, mutual_information, prealign, atlas_prior, windows, unet, bundle_runtime]
SCRIPT = "scripts.bundle_runtime"
RUN_NOTE = ("Every NIfTI scan (`.nii`, `.nii.gz`) in `INPUT_FOLDER` becomes `OUTPUT_FOLDER/<name>_seg.nii.gz`, a "
            "label map on the scan's own grid (same shape and voxel-to-world matrix).")


def _window(manifest: dict[str, Any]) -> list[int] | None:
    """The windows ``segment`` uses when memory allows: the training patch within the grid, or the whole grid."""
    grid = manifest["preprocessing"]["grid"]["shape"]
    trained = manifest.get("training", {}).get("options", {}).get("synthesis", {}).get("patch")
    return [int(min(t, g)) for t, g in zip(trained, grid)] if trained else None


def _label_dtype(values: list[int]) -> str:
    return "uint8" if max(values) <= 255 else "int32"


def inference_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """``configs/inference.json``: every NIfTI scan of ``dataset_dir`` -> ``<output_dir>/<name>_seg.nii.gz``."""
    pre, student = manifest["preprocessing"], manifest["networks"]["student"]
    grid = {"grid_shape": pre["grid"]["shape"], "grid_affine": pre["grid"]["affine"]}
    values = [int(v) for v in manifest["class_values"]]
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image", "image_only": True, "reader": "NibabelReader",
         "dtype": "$numpy.float32"},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": f"{SCRIPT}.AlignToAtlasd", "keys": "image", "atlas_file": "$@bundle_root + '/models/atlas.pt'",
         **grid, "intensity": pre["intensity"], "prealign": bool(pre.get("prealign", True)),
         "prior_sigma": float(pre["atlas_prior_sigma"]) if student.get("prior_channels") else None,
         "num_classes": len(values)},
    ]
    postprocessing = [
        {"_target_": f"{SCRIPT}.LabelsOnScand", "keys": "pred", "class_values": values, **grid,
         "image_key": "image", "label_dtype": _label_dtype(values)},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "output_ext": ".nii.gz", "output_dtype": f"$numpy.{_label_dtype(values)}", "resample": False,
         "separate_folder": False, "print_log": False},
    ]
    datalist = ("$[{'image': f} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*'))) "
                "if f.lower().endswith(('.nii', '.nii.gz')) and os.path.isfile(f)]")
    inferer = {"_target_": f"{SCRIPT}.GaussianWindowInferer", "grid_shape": pre["grid"]["shape"],
               "window": "@window", "device": "@device"}
    config = evaluator_config({"_target_": f"{SCRIPT}.OneShotStudent", **student}, datalist, preprocessing,
                              inferer, postprocessing,
                              # channels-last: the layout ``segment`` runs the student in (its fastest 3D kernels)
                              network="$@network_def.to(@device).to(memory_format=torch.channels_last_3d)")
    return {**config, "window": _window(manifest)}


def network_data_format(manifest: dict[str, Any]) -> dict[str, Any]:
    """Inputs and outputs of the network (on the working grid) and of the whole pipeline (the label map)."""
    values = [int(v) for v in manifest["class_values"]]
    names = {entry["value"]: entry["name"] for entry in manifest["labels"]}
    channels = {"0": "background", **{str(v): names.get(v, f"Label {v}") for v in values[1:]}}
    grid = list(manifest["preprocessing"]["grid"]["shape"])
    prior = manifest["networks"]["student"].get("prior_channels", 0)
    inputs = {"0": "image"}
    inputs.update({str(1 + index): f"atlas prior: {channels[str(v)]}" for index, v in enumerate(values[:prior])})
    return {
        "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "MR or CT", "num_channels": 1 + prior,
                             "spatial_shape": grid, "dtype": "float32", "value_range": [0, 1],
                             "is_patch_data": _window(manifest) not in (None, grid), "channel_def": inputs}},
        "outputs": {"pred": {"type": "image", "format": "labels", "num_channels": len(values),
                             "spatial_shape": grid, "dtype": "float32", "value_range": [],
                             "is_patch_data": False, "channel_def": channels}},
        "post_processed_outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 1,
                                            "spatial_shape": ["*", "*", "*"], "dtype": _label_dtype(values),
                                            "value_range": [0, max(values)], "is_patch_data": False,
                                            "channel_def": channels}},
    }


def _description(manifest: dict[str, Any], names: list[str]) -> str:
    pre = manifest["preprocessing"]
    grid = pre["grid"]
    spacing = np.linalg.norm(np.asarray(grid["affine"], dtype=float)[:3, :3], axis=0)
    prior = ", with the blurred atlas labels as extra input" if manifest["networks"]["student"].get("prior_channels") \
        else ""
    return (f"OneShotSeg model '{manifest.get('name', '')}': a 3D U-Net student that labels {len(names)} structures "
            f"({', '.join(names)}), learned from one labelled atlas by reconstruction-guided feature distillation "
            "(OneShotSeg's distillseg engine). Each scan is normalised"
            f"{', affinely pre-aligned to the atlas' if pre.get('prealign', True) else ''} and resampled onto the "
            f"{'x'.join(map(str, grid['shape']))} working grid ({'x'.join(f'{s:g}' for s in spacing)} mm)"
            f"{prior}; "
            "the label map comes back on the scan's own grid.")


def write_oneshot_bundle(bundle: Bundle, folder: Path) -> dict[str, Any]:
    """Write the student's weights, the atlas, ``configs/inference.json`` and ``scripts/`` into ``folder`` (made
    by ``make_folders``); returns the model's own ``metadata.json`` fields."""
    manifest = bundle.manifest
    grid = tuple(manifest["preprocessing"]["grid"]["shape"])
    student = bundle.load_network("student", lambda: bundle_runtime.OneShotStudent(**manifest["networks"]["student"]))
    save_tensors(folder / "models" / "model.pt", student.state_dict())
    atlas = bundle.load_weights("atlas", "cpu", {"image": grid, "classes": grid})
    save_tensors(folder / "models" / "atlas.pt", atlas)
    write_config(folder, inference_config(manifest))
    copy_scripts(folder, MODULES)
    names = [e["name"] for e in manifest["labels"]]
    return {
        "name": f"OneShotSeg 3D segmentation ({', '.join(names)})",
        "task": f"Segmentation of {', '.join(names)} in 3D scans",
        "description": _description(manifest, names),
        "data_type": "3D scans (NIfTI)",
        "image_classes": "single-channel 3D scan of any size and orientation, in the modality of the atlas",
        "pred_classes": "label map on the scan's grid: 0 background, "
                        + ", ".join(f"{v} {n}" for v, n in network_data_format(manifest)["outputs"]["pred"]
                                    ["channel_def"].items() if v != "0"),
        "references": ["One-shot medical image segmentation by reconstruction-guided feature distillation "
                       "(the OneShotSeg method; see the extension's README)"],
        "network_data_format": network_data_format(manifest),
    }


def oneshot_bundle(model_dir: Path) -> tuple[Callable[[Path], dict[str, Any]], str, str]:
    """(write, image reader package, README note) for ``monai_bundle_export.export_bundle``: the manifest is
    checked now (``predict.check_consistent``); ``write(folder)`` reads and checks the weights."""
    bundle = load_bundle(model_dir, method=ONESHOT)
    check_consistent(bundle)
    return (lambda folder: write_oneshot_bundle(bundle, folder)), "nibabel", RUN_NOTE
