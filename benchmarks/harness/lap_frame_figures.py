"""Figures of real frames for ``benchmarks.lap_endoscapes``: a few val frames with the true labels and the
predictions of several models, every figure captioned with the data set's attribution and licence.

Frames are shown on the models' working grid (what the scores are computed on). Colours are the data set's
``labels.json`` colours, matched by structure name, so models that numbered their classes differently agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.harness.figures import pyplot, save
from benchmarks.harness.lap_replay_evidence import CAPTION

_FRAME_CAPTION = CAPTION.split(" Replayed")[0]


def _overlay(frame: np.ndarray, labels: np.ndarray, colors: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """uint8 (H, W, 3) frame with each labelled pixel blended half-way to its class colour."""
    out = frame.astype(np.float32)
    for value, color in colors.items():
        inside = labels == value
        out[inside] = 0.5 * out[inside] + 0.5 * np.asarray(color, dtype=np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def _chosen(frames, count: int) -> list[int]:
    """Frames showing the most structures, at most one per patient (video), first in patient order."""
    shown = [(int(frames.annotated[k].sum()), len(set(frames.labels[k].unique().tolist()) - {0, 255}), k)
             for k in range(len(frames))]
    chosen, patients = [], set()
    for _, _, k in sorted(shown, key=lambda t: (-t[1], t[2])):
        if frames.patients[k] not in patients:
            chosen.append(k)
            patients.add(frames.patients[k])
        if len(chosen) == count:
            break
    return chosen


def prediction_figure(models: dict[str, Path], data: Path, patients: list[str], path: Path, count: int = 4) -> None:
    """Rows: ``count`` val frames; columns: the frame, its true labels, then each model's prediction."""
    import json

    from distillseg.common.progress import Progress
    from distillseg.lap.data import read_frames
    from distillseg.lap.model_bundle import load_lap_model
    from distillseg.lap.prediction import predict_working_grid

    loaded = {name: load_lap_model(folder) for name, folder in models.items()}
    reference = next(iter(loaded.values()))
    names = reference.registry.names
    table = {e["name"]: tuple(e["color"]) for e in json.loads((data / "labels.json").read_text())}
    frames = read_frames(data, names, {n: reference.registry.value_of(n) for n in names}, reference.size,
                         Progress("none"), patients=patients, unknown_values="skip")
    rows = _chosen(frames, count)
    truth_colors = {reference.registry.value_of(n): table[n] for n in names}
    columns = {"frame": None, "truth": (frames.labels[rows].numpy(), truth_colors)}
    for name, model in loaded.items():
        predicted = predict_working_grid(model.build(torch.device("cpu")), frames.images[rows], torch.device("cpu"))
        colors = {model.registry.value_of(n): table[n] for n in model.registry.names}
        columns[name] = (predicted.numpy(), colors)
    fig, axes = pyplot().subplots(len(rows), len(columns), figsize=(2.3 * len(columns), 1.5 * len(rows) + 0.6))
    axes = np.atleast_2d(axes)
    for r, k in enumerate(rows):
        frame = frames.images[k].permute(1, 2, 0).numpy()
        for c, (title, content) in enumerate(columns.items()):
            shown = frame if content is None else _overlay(frame, content[0][r], content[1])
            axes[r, c].imshow(shown)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(title, fontsize=8)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=np.asarray(table[n]) / 255, label=n) for n in names], loc="upper center",
               ncol=len(names), fontsize=7, frameon=False, bbox_to_anchor=(0.5, 0.97))
    save(fig, path, dpi=100, title="Val frames: true labels and each model's prediction after the last step\n",
         caption=_FRAME_CAPTION)
