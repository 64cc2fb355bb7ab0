"""Figures of a one-shot benchmark run: learning curves from the model bundles, and slices with the labels.

``learning_curves`` reads the per-step losses every ``distillseg oneshot train`` run records in its bundle's
``manifest.json`` (``training.curves``: ``[step, loss, elapsed seconds, parts]`` per logged step); ``overlay`` shows
three orthogonal slices through the centre of a test scan with the predicted and the true label maps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def learning_curves(path: Path, models: dict[str, str], title: str) -> bool:
    """One panel per stage (augmenter, distill): loss against training minutes, one line per model; False when no
    model folder is left to read (e.g. a report rebuilt elsewhere)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for name, folder in models.items():
        manifest = Path(folder) / "manifest.json"
        if manifest.is_file():
            curves[name] = json.loads(manifest.read_text())["training"].get("curves", {})
    if not curves:
        return False
    stages = ["augmenter", "distill"]
    fig, axes = plt.subplots(1, len(stages), figsize=(11, 3.8))
    for axis, stage in zip(axes, stages):
        for name, stage_curves in curves.items():
            points = stage_curves.get(stage) or []
            if points:
                axis.plot([p[2] / 60 for p in points], [p[1] for p in points], label=name, linewidth=1.2)
        axis.set_xlabel(f"{stage} stage, minutes of training")
        axis.set_ylabel("loss (logged steps)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def overlay(path: Path, image: Path, predicted: Path, truth: Path, title: str,
            label_map: dict[int, int] | None = None) -> bool:
    """Axial, coronal and sagittal centre slices: prediction (top row) and truth (bottom row) over the scan, each
    label value in its own colour (``label_map`` turns predicted values into the truth's); False when a file is
    missing."""
    if not all(Path(p).is_file() for p in (image, predicted, truth)):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distillseg.common.volume_io import read_image, read_labels

    scan, rows = read_image(image).array, [read_labels(predicted).array, read_labels(truth).array]
    if label_map:
        to_truth = np.arange(max(int(rows[0].max()), max(label_map)) + 1)
        to_truth[list(label_map)] = list(label_map.values())
        rows[0] = to_truth[rows[0]]
    values = np.unique(np.concatenate([np.unique(r) for r in rows]))
    lookup = np.zeros(int(values.max()) + 1, dtype=np.int64)
    lookup[values] = np.arange(len(values))  # label value -> colour index (0 = background, transparent)
    colours = plt.get_cmap("tab20", max(len(values) - 1, 1))(np.arange(max(len(values) - 1, 1)))
    colours[:, 3] = 0.55
    cmap = matplotlib.colors.ListedColormap(np.vstack([[0, 0, 0, 0], colours]))
    centre = [s // 2 for s in scan.shape]
    cuts = [("axial", lambda a: np.rot90(a[:, :, centre[2]])), ("coronal", lambda a: np.rot90(a[:, centre[1], :])),
            ("sagittal", lambda a: np.rot90(a[centre[0], :, :]))]
    fig, axes = plt.subplots(2, 3, figsize=(11, 7.4))
    for row, (labels, kind) in enumerate(zip(rows, ("prediction", "truth"))):
        for column, (view, cut) in enumerate(cuts):
            axis = axes[row, column]
            axis.imshow(cut(scan), cmap="gray")
            axis.imshow(cut(lookup[labels]), cmap=cmap, vmin=0, vmax=len(values) - 1, interpolation="nearest")
            axis.set_title(f"{view}, {kind}", fontsize=9)
            axis.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True
