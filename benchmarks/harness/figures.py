"""The plots of the benchmark reports: a box plot per method, learning curves from model bundles, label overlays.

``learning_curves`` reads the per-step losses every ``distillseg oneshot train`` run records in its bundle's
``manifest.json`` (``training.curves``: ``[step, loss, elapsed seconds, parts]`` per logged step); ``overlay`` shows
three orthogonal slices through the centre of a test scan with the predicted and the true label maps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (benchmarks run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int, title: str | None = None, caption: str | None = None) -> None:
    """Title (small), tight layout, a caption line under the plot (a data set's attribution and licence, which must
    travel with any figure that shows its frames), write ``path`` and free the figure."""
    if title is not None:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if caption is not None:
        fig.subplots_adjust(bottom=max(fig.subplotpars.bottom, 0.1))
        fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=6.5, wrap=True)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)


def boxplot(path: Path, series: dict[str, list[float]], title: str, ylabel: str = "Dice") -> None:
    """One box per method (``series``: method -> per-structure values), points overlaid, means marked."""
    plt = pyplot()
    names = list(series)
    fig, axis = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4.2))
    data = [[v for v in series[n] if v == v] for n in names]
    axis.boxplot(data, showmeans=True, widths=0.6)
    for index, values in enumerate(data, 1):
        jitter = [index + 0.18 * ((k * 7919) % 11 / 10 - 0.5) for k in range(len(values))]
        axis.scatter(jitter, values, s=8, alpha=0.5, color="tab:blue", zorder=3)
    axis.set_xticks(range(1, len(names) + 1), names, rotation=25, ha="right", fontsize=8)
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(title, fontsize=9)
    save(fig, path, dpi=110)


def learning_curves(path: Path, models: dict[str, str], title: str) -> bool:
    """One panel per stage (augmenter, distill): loss against training minutes, one line per model; False when no
    model folder is left to read (e.g. a report rebuilt elsewhere)."""
    curves = {}
    for name, folder in models.items():
        manifest = Path(folder) / "manifest.json"
        if manifest.is_file():
            curves[name] = json.loads(manifest.read_text())["training"].get("curves", {})
    if not curves:
        return False
    stages = ["augmenter", "distill"]
    fig, axes = pyplot().subplots(1, len(stages), figsize=(11, 3.8))
    for axis, stage in zip(axes, stages):
        for name, stage_curves in curves.items():
            points = stage_curves.get(stage) or []
            if points:
                axis.plot([p[2] / 60 for p in points], [p[1] for p in points], label=name, linewidth=1.2)
        axis.set_xlabel(f"{stage} stage, minutes of training")
        axis.set_ylabel("loss (logged steps)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    save(fig, path, dpi=90, title=title)
    return True


def overlay(path: Path, image: Path, predicted: Path, truth: Path, title: str,
            label_map: dict[int, int] | None = None) -> bool:
    """Axial, coronal and sagittal centre slices: prediction (top row) and truth (bottom row) over the scan, each
    label value in its own colour (``label_map`` turns predicted values into the truth's); False when a file is
    missing."""
    if not all(Path(p).is_file() for p in (image, predicted, truth)):
        return False
    plt = pyplot()
    from matplotlib.colors import ListedColormap

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
    cmap = ListedColormap(np.vstack([[0, 0, 0, 0], colours]))
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
    save(fig, path, dpi=90, title=title)
    return True
