"""Compose Resources/Screenshots/IncrementalLapWorkflow.png: the IncrementalLap panel next to the engine's results.

Inputs come from one real run of ``lap_workflow_run.py`` (SYNTHETIC frames, the module's Lib on a headless
slicer-core scene): ``result.npz`` (the shown frame, its generated truth and the labels of the model before and
after learning, (H, W) arrays), ``run.json`` (options, times, device, scores on the check frames; ``times_measured`` false and a ``note`` for a run that did
not have the shared CPU to itself, whose times are then not shown) and ``panel.png``,
the module panel rendered by ``render_module_panel.py`` from ``panel_state.json``.

    python compose_lap_workflow.py result.npz run.json panel.png IncrementalLapWorkflow.png
"""

import json
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402


def overlay(axis, frame, labels, truth, colors, title):
    """The frame with each structure's predicted pixels tinted in its colour and its true outline drawn on top."""
    shown = frame.astype(np.float32) / 255.0
    for value, rgb in colors.items():
        where = labels == value
        shown[where] = 0.45 * shown[where] + 0.55 * np.asarray(rgb) / 255.0
    axis.imshow(shown, interpolation="nearest")
    if truth is not None:
        for value, rgb in colors.items():
            if (truth == value).any():
                axis.contour(truth == value, levels=[0.5], colors=[np.asarray(rgb) / 255.0], linewidths=1.4)
    axis.set_title(title, fontsize=10)
    axis.axis("off")


def scoreText(run):
    lines = ["Check frames (patient %s), IoU before -> after:" % run["check_patient"]]
    for row in run["scores"]:
        before = "  -  " if row["iouBefore"] is None else f"{row['iouBefore']:.2f}"
        lines.append(f"  {row['structure']:<16} {before} -> {row['iouAfter']:.2f}")
    times = run["times"] if run.get("times_measured", True) else None  # only times taken under the shared lock
    base, learn = run["base_options"], run["learn_options"]
    lines += ["",
              f"Existing model: lap train, {', '.join(run['structures'][:-1])};",
              f"  patients {run['base_patients']}, {base['iterations']} iterations, "
              f"{base['workingSize'][0]}x{base['workingSize'][1]}"
              + (f": {times['base_training_s'] / 60:.1f} min" if times else ""),
              f"Learn new structures: {run['structures'][-1]} from {run['frames_learned']} frames of",
              f"  patients {', '.join(run['new_patients'])} only, {learn['iterations']} iterations, "
              f"{run['replayed_frames']} replayed frames"]
    if times:
        lines += [f"  learn + scoring: {times['learning_and_scoring_s'] / 60:.1f} min "
                  f"(learn step {times['learn_step_engine_s'] / 60:.1f} min)",
                  f"Segment one frame: {times['segment_new_s']:.0f} s (engine start included)"]
    lines.append(f"Device: {run['device']}")
    if run.get("note"):
        lines += [""] + textwrap.wrap(run["note"], 58)
    return "\n".join(lines)


def main(resultPath, runPath, panelPath, outPath):
    result = np.load(resultPath)
    run = json.load(open(runPath, encoding="utf-8"))
    colors = {index + 1: run["colors"][name] for index, name in enumerate(run["structures"])}
    known = {value: rgb for value, rgb in colors.items() if value < len(colors)}
    figure = plt.figure(figsize=(16, 12.5), dpi=100)
    grid = figure.add_gridspec(2, 3, width_ratios=[1.2, 1.25, 1.25], wspace=0.04, hspace=0.12)
    panel = figure.add_subplot(grid[:, 0])
    panel.imshow(plt.imread(panelPath))
    panel.set_title("IncrementalLap module (rendered from its .ui) after the run", fontsize=11)
    panel.axis("off")
    frame, truth = result["frame"], result["truth"]
    overlay(figure.add_subplot(grid[0, 1]), frame, np.zeros_like(truth), truth, colors,
            f"SYNTHETIC frame ({run['shown_frame']}), true outlines")
    overlay(figure.add_subplot(grid[0, 2]), frame, result["before"], truth, known,
            "existing model: liver, stomach, colon")
    overlay(figure.add_subplot(grid[1, 1]), frame, result["after"], truth, colors,
            f"after 'Learn new structures': + {run['structures'][-1]}")
    text = figure.add_subplot(grid[1, 2])
    text.axis("off")
    text.text(0.0, 1.0, scoreText(run), va="top", ha="left", family="monospace", fontsize=9.5)
    text.legend(handles=[Patch(color=np.asarray(colors[v]) / 255.0, label=n)
                         for v, n in enumerate(run["structures"], 1)], loc="lower left", fontsize=9, frameon=False)
    figure.suptitle("IncrementalLap on SYNTHETIC frames made by 'distillseg lap demo-data' (generated pictures, not "
                    "laparoscopic images): filled = model, outline = truth", fontsize=12)
    figure.savefig(outPath, bbox_inches="tight")


if __name__ == "__main__":
    main(*sys.argv[1:5])
