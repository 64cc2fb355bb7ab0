"""An IncrementalLap model as a MONAI Bundle: the files ``distillseg model export-bundle`` writes for a ``lap``
model (``distillseg.common.monai_bundle_export`` checks the paths and writes the folder atomically).

The bundle needs no distillseg: the network is MONAI's ``FlexibleUNet`` with the segmenter's arguments, and its
preprocessing repeats ``distillseg lap segment`` step by step with stock MONAI transforms, except the antialiased
resize (``scripts/frame_resize.py``, this package's ``frame_resize`` copied verbatim)::

    PNG/JPEG/TIFF -> RGB (h, w, 3) -> channel-first (3, h, w) -> crop the endoscope's black border (rows/columns
    whose brightest pixel is at most 10) -> (3, H, W) working grid, antialiased bilinear, whole levels -> / 255 ->
    ImageNet mean/std per channel -> FlexibleUNet -> softmax (1 + C, H, W) -> back to the crop (bilinear) and into
    the frame (border = background) -> argmax -> index PNG (0 = background, v = structure v)

MONAI's ``PILReader`` gives PNGs as (width, height): a ``Transposed`` puts rows first as the engine has them, and
``Invertd`` undoes it before the label map is written, so the PNG is the frame's own shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from distillseg.common.frame_views import BLACK_BORDER_LEVEL
from distillseg.common.monai_bundle_export import copy_scripts, evaluator_config, save_tensors, write_config
from distillseg.contract.frames import FRAME_SUFFIXES
from distillseg.lap import frame_resize
from distillseg.lap.model_bundle import LapModel, load_lap_model
from distillseg.lap.segmenter import IMAGENET_MEAN, IMAGENET_STD

SCRIPT = "frame_resize"  # the module's name under the bundle's scripts/
RUN_NOTE = ("Every PNG/JPEG/TIFF frame in `INPUT_FOLDER` becomes `OUTPUT_FOLDER/<name>_seg.png`, a grey label map "
            "of the frame's size.")


def flexible_unet_args(model: LapModel) -> dict[str, Any]:
    """``FlexibleUNet`` arguments that build the segmenter's network (``distillseg.lap.segmenter.Segmenter``)."""
    return {"in_channels": 3, "out_channels": model.registry.num_outputs, "backbone": model.config.backbone,
            "pretrained": False, "decoder_channels": list(model.config.decoder_channels), "spatial_dims": 2,
            "is_pad": False}


def flexible_unet_state(segmenter: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The segmenter's weights under ``FlexibleUNet``'s names: ``Segmenter`` keeps the encoder and decoder as they
    are and only takes the head out of ``segmentation_head`` (its conv is element 0 there)."""
    return {("segmentation_head.0." + name[len("head."):] if name.startswith("head.") else name): value.contiguous()
            for name, value in segmenter.items()}


def _load_frames_expression() -> str:
    suffixes = ", ".join(repr(s) for s in FRAME_SUFFIXES)
    return (f"$[{{'image': f}} for f in sorted(glob.glob(os.path.join(@dataset_dir, '*'))) "
            f"if f.lower().endswith(({suffixes})) and os.path.isfile(f)]")


def inference_config(model: LapModel) -> dict[str, Any]:
    """``configs/inference.json``: every frame of ``dataset_dir`` -> ``<output_dir>/<name>_seg.png``."""
    label_dtype = "$numpy.uint16" if model.registry.num_outputs > 256 else "$numpy.uint8"
    preprocessing = [
        {"_target_": "LoadImaged", "keys": "image", "image_only": True,
         # an alpha channel is dropped and palette/CMYK frames become RGB, as the engine's read_frame does
         "reader": {"_target_": "PILReader", "converter": "$lambda image: image.convert('RGB')"}},
        {"_target_": "EnsureChannelFirstd", "keys": "image"},
        {"_target_": "Transposed", "keys": "image", "indices": [0, 2, 1]},
        # a frame with no pixel above the level is taken whole, as the engine does
        {"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "allow_smaller": True,
         "select_fn": f"$lambda x: (x > {BLACK_BORDER_LEVEL}) | ~(x > {BLACK_BORDER_LEVEL}).any()"},
        {"_target_": f"scripts.{SCRIPT}.ResizeFramed", "keys": "image", "spatial_size": list(model.size)},
        {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0, "a_max": 255, "b_min": 0, "b_max": 1},
        {"_target_": "NormalizeIntensityd", "keys": "image", "subtrahend": list(IMAGENET_MEAN),
         "divisor": list(IMAGENET_STD), "channel_wise": True},
    ]
    postprocessing = [
        {"_target_": "Activationsd", "keys": "pred", "softmax": True},
        {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image",
         "nearest_interp": False, "to_tensor": True},
        {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
        {"_target_": "SaveImaged", "keys": "pred", "output_dir": "@output_dir", "output_postfix": "seg",
         "output_ext": ".png", "output_dtype": label_dtype, "scale": None, "resample": False,
         "separate_folder": False, "print_log": False},
    ]
    return evaluator_config({"_target_": "FlexibleUNet", **flexible_unet_args(model)}, _load_frames_expression(),
                            preprocessing, {"_target_": "SimpleInferer"}, postprocessing)


def _network_input_range() -> list[float]:
    """The values the network sees: [0, 1] after ImageNet normalisation, lowest and highest over the channels."""
    return [round(min(-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)), 4),
            round(max((1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)), 4)]


def network_data_format(model: LapModel) -> dict[str, Any]:
    """Inputs and outputs of the network (on the working grid) and of the whole pipeline (the label map)."""
    channels = {"0": "background", **{str(e.value): e.name for e in model.registry.entries}}
    outputs = model.registry.num_outputs
    return {
        "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "ES", "num_channels": 3,
                             "spatial_shape": list(model.size), "dtype": "float32",
                             "value_range": _network_input_range(), "is_patch_data": False,
                             "channel_def": {"0": "R", "1": "G", "2": "B"}}},
        "outputs": {"pred": {"type": "image", "format": "labels", "num_channels": outputs,
                             "spatial_shape": list(model.size), "dtype": "float32", "value_range": [],
                             "is_patch_data": False, "channel_def": channels}},
        "post_processed_outputs": {"pred": {"type": "image", "format": "segmentation", "num_channels": 1,
                                            "spatial_shape": ["*", "*"], "dtype": "uint8" if outputs <= 256
                                            else "uint16", "value_range": [0, outputs - 1],
                                            "is_patch_data": False, "channel_def": channels}},
    }


def _description(model: LapModel) -> str:
    names = ", ".join(model.registry.names)
    text = (f"IncrementalLap model after step {model.step}: a FlexibleUNet ({model.config.backbone} encoder) that "
            f"labels {len(model.registry)} structures ({names}) in RGB laparoscopic frames, learned class-"
            "incrementally with diffusion replay and distillation (OneShotSeg's distillseg engine). Frames are "
            f"cropped to the endoscope's picture and resized to {model.size[0]}x{model.size[1]}; the label map "
            "comes back on the frame's own grid.")
    if model.synthetic_training_data:
        text += " Trained on SYNTHETIC frames (distillseg lap demo-data): for demonstration and testing only."
    return text


def lap_bundle(model_dir: Path) -> tuple[Callable[[Path], dict[str, Any]], str, str]:
    """(write, image reader package, README note) for ``monai_bundle_export.export_bundle``: the model is loaded
    (and checked) now; ``write(folder)`` fills the bundle's ``models``, ``configs`` and ``scripts``."""
    model = load_lap_model(model_dir)
    return (lambda folder: write_lap_bundle(model, folder)), "pillow", RUN_NOTE


def write_lap_bundle(model: LapModel, folder: Path) -> dict[str, Any]:
    """Write the weights, ``configs/inference.json`` and ``scripts/`` into ``folder`` (made by ``make_folders``);
    returns the model's own ``metadata.json`` fields (the caller adds what every bundle carries)."""
    save_tensors(folder / "models" / "model.pt", flexible_unet_state(model.segmenter))
    write_config(folder, inference_config(model))
    copy_scripts(folder, [frame_resize])
    return {
        "name": f"IncrementalLap frame segmentation ({', '.join(model.registry.names)})",
        "task": f"Segmentation of {', '.join(model.registry.names)} in RGB laparoscopic frames",
        "description": _description(model),
        "data_type": "RGB frames (PNG, JPEG or TIFF)",
        "image_classes": "RGB laparoscopic frame of any size, intensities 0-255",
        "pred_classes": "label map on the frame's grid: 0 background, "
                        + ", ".join(f"{e.value} {e.name}" for e in model.registry.entries),
        "references": ["Zhao et al., diffusion-driven distillation with cross-image contrastive learning for "
                       "class-incremental laparoscopic segmentation, IJCARS 2025, doi 10.1007/s11548-025-03405-1"],
        "network_data_format": network_data_format(model),
    }
