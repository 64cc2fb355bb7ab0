"""Compose Resources/Screenshots/OneShotSegWorkflow.png: the module panel next to the engine's segmentation.

Inputs come from one real run of the sample case through the module's Lib (train with ``distillseg oneshot train``,
segment, import as a segmentation node): ``result.npz`` (the scan, the true labels and the imported segmentation as
(K, J, I) arrays, and the voxel spacing) and ``run.json`` (options, Dice, times, device); ``panel.png`` is the module
panel rendered by ``render_module_panel.py`` with that run's log and progress.

    python compose_workflow.py result.npz run.json panel.png OneShotSegWorkflow.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

COLOURS = {1: (230, 159, 0), 3: (86, 180, 233)}  # the sample case's segment colours
NAMES = {1: "blob", 3: "box"}


def overlay(axis, image, predicted, truth, aspect, title):
    axis.imshow(image, cmap="gray", aspect=aspect, interpolation="nearest")
    for value, rgb in COLOURS.items():
        colour = np.array(rgb) / 255.0
        axis.imshow(np.ma.masked_where(predicted != value, predicted), cmap=ListedColormap([colour]), alpha=0.55,
                    aspect=aspect, interpolation="nearest")
        if (truth == value).any():
            axis.contour(truth == value, levels=[0.5], colors=[colour], linewidths=1.6)
    axis.set_title(title, fontsize=10)
    axis.axis("off")


def throughEveryStructure(truth, axis):
    """The slice index along ``axis`` that cuts every structure, with the most voxels of the smallest one."""
    counts = np.stack([(truth == value).sum(axis=tuple(a for a in range(3) if a != axis)) for value in COLOURS])
    return int(np.argmax(counts.min(axis=0)))


def main(resultPath, runPath, panelPath, outPath):
    result = np.load(resultPath)
    run = json.load(open(runPath, encoding="utf-8"))
    image, truth, predicted = result["image"], result["truth"], result["pred"]
    spacing = result["spacing"]  # (i, j, k) mm
    k, j, i = (throughEveryStructure(truth, axis) for axis in range(3))
    figure = plt.figure(figsize=(15, 10.5), dpi=100)
    grid = figure.add_gridspec(2, 3, width_ratios=[1.35, 1, 1], height_ratios=[1, 1], wspace=0.04, hspace=0.15)
    panel = figure.add_subplot(grid[:, 0])
    panel.imshow(plt.imread(panelPath))
    panel.set_title("OneShotSeg module (rendered from its .ui) after the run", fontsize=11)
    panel.axis("off")
    overlay(figure.add_subplot(grid[0, 1]), image[k], predicted[k], truth[k], spacing[1] / spacing[0], "axial slice")
    overlay(figure.add_subplot(grid[0, 2]), image[:, j], predicted[:, j], truth[:, j], spacing[2] / spacing[0],
            "coronal slice")
    overlay(figure.add_subplot(grid[1, 1]), image[:, :, i], predicted[:, :, i], truth[:, :, i], spacing[2] / spacing[1],
            "sagittal slice")
    text = figure.add_subplot(grid[1, 2])
    text.axis("off")
    options = run["options"]
    dice = ", ".join(f"{NAMES[int(v)]} {d:.2f}" for v, d in run["dice"].items())
    text.text(0.0, 0.95, "\n".join([
        "Segmentation by the trained model",
        "(filled: engine output imported as a",
        "segmentation node; lines: true outlines)",
        "",
        "Data: generated sample case",
        "(OneShotSegLib.sampleCase, 24^3 voxels,",
        "1 atlas + 3 unlabelled scans)",
        f"Training: {options['iterations']} student + {options['augmenterIterations']} augmenter",
        f"iterations on {run['device']}, {run['precision']}: {run['train_s'] / 60:.1f} min",
        "(2 shared CPU cores, other jobs running)",
        f"Segmentation: {run['segment_s']:.0f} s",
        f"Dice vs truth: {dice}",
    ]), va="top", fontsize=11, family="DejaVu Sans")
    figure.savefig(outPath, bbox_inches="tight", facecolor="white")


if __name__ == "__main__":
    main(*sys.argv[1:5])
