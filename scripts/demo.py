"""The README's demo: the whole one-shot job on built-in data, in about 10 minutes on 2 CPU cores.

1. ``distillseg oneshot demo-data``: an atlas with grey/white matter/CSF labels from nilearn's MNI152 template and
   SYNTHETIC subjects made from it (random smooth deformations, head motion, intensity changes);
2. ``distillseg oneshot train`` on the atlas + 2 unlabelled subjects (3 mm working grid, short schedule);
3. ``distillseg oneshot evaluate`` on 2 held-out subjects (Dice and HD95 per tissue, written as a table);
4. ``distillseg oneshot segment`` of the held-out subjects, and a PNG of slices with the overlays.
Everything lands in ``demo_output/`` (or the folder given as the first argument).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def distillseg(*args: str) -> None:
    command = [sys.executable, "-m", "distillseg", *map(str, args)]
    print("$ distillseg " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def dice_table(report: dict) -> str:
    names = {}
    rows = []
    for case in report["cases"]:
        for value, score in case["structures"].items():
            names[value] = score["name"]
    header = "| subject | " + " | ".join(names.values()) + " | mean Dice | segment time |"
    rows.append(header)
    rows.append("|" + "---|" * (len(names) + 3))
    for case in report["cases"]:
        cells = [f"{case['structures'][v]['dice']:.3f}" for v in names]
        rows.append(f"| {Path(case['image']).name} | " + " | ".join(cells)
                    + f" | {case['mean_dice']:.3f} | {case['segment_seconds']:.1f} s |")
    return "\n".join(rows)


def figure(images: list[Path], segmentations: list[Path], truths: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from distillseg.common.volume_io import read_image, read_labels

    colours = ListedColormap([(0, 0, 0, 0), (0.6, 0.4, 0.8, 0.55), (0.98, 0.98, 0.88, 0.45), (0.33, 0.74, 1, 0.6)])
    fig, axes = plt.subplots(len(images), 4, figsize=(13, 3.4 * len(images)))
    axes = np.atleast_2d(axes)
    for row, (image_path, seg_path, truth_path) in enumerate(zip(images, segmentations, truths)):
        image, seg, truth = read_image(image_path).array, read_labels(seg_path).array, read_labels(truth_path).array
        centre = [s // 2 for s in image.shape]
        views = [("axial", lambda a: np.rot90(a[:, :, centre[2]])), ("coronal", lambda a: np.rot90(a[:, centre[1], :])),
                 ("sagittal", lambda a: np.rot90(a[centre[0], :, :]))]
        for col, (name, cut) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(cut(image), cmap="gray")
            ax.imshow(cut(seg), cmap=colours, vmin=0, vmax=3, interpolation="nearest")
            ax.set_title(f"{image_path.name}: {name}, prediction", fontsize=9)
            ax.axis("off")
        ax = axes[row, 3]
        ax.imshow(np.rot90(image[:, :, centre[2]]), cmap="gray")
        ax.imshow(np.rot90(truth[:, :, centre[2]]), cmap=colours, vmin=0, vmax=3, interpolation="nearest")
        ax.set_title("axial, truth", fontsize=9)
        ax.axis("off")
    fig.suptitle("OneShotSeg demo on SYNTHETIC subjects (MNI152 template, deformed): purple grey matter, "
                 "cream white matter, blue CSF", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo_output").resolve()
    data, model = out / "data", out / "model"
    started = time.time()
    distillseg("oneshot", "demo-data", "--out", data, "--unlabeled", "2")
    unlabeled = sorted((data / "unlabeled").glob("*.nii.gz"))
    tests = sorted(p for p in (data / "test").glob("test??.nii.gz"))
    truths = [p.with_name(p.name.replace(".nii.gz", "_labels.nii.gz")) for p in tests]
    distillseg("oneshot", "train", "--atlas", data / "atlas.nii.gz", "--atlas-labels", data / "atlas_labels.nii.gz",
               "--label-names", data / "labels.json", "--unlabeled", *unlabeled, "--out", model,
               "--spacing", "3", "--augmenter-iterations", "40", "--iterations", "200")
    distillseg("oneshot", "evaluate", "--model", model, "--images", *tests, "--labels", *truths,
               "--report", out / "evaluation.json")
    distillseg("oneshot", "segment", "--model", model, "--input", *tests, "--output", out / "segmentations",
               "--format", ".seg.nrrd")
    segmentations = [out / "segmentations" / p.name.replace(".nii.gz", "_seg.seg.nrrd") for p in tests]
    figure(tests, segmentations, truths, out / "demo.png")
    report = json.loads((out / "evaluation.json").read_text())
    table = dice_table(report)
    (out / "dice.md").write_text("Demo on SYNTHETIC subjects (MNI152 template, deformed).\n\n" + table + "\n")
    print("\n" + table)
    print(f"\nSYNTHETIC subjects (MNI152 template, deformed). Mean Dice {report['mean_dice']:.3f}. "
          f"Whole demo {time.time() - started:.0f} s. Results in {out}: dice.md, demo.png, segmentations/, model/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
