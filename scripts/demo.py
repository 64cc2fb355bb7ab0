"""The README's demo: the whole one-shot job on built-in data, in about 10 minutes on 2 CPU cores.

1. ``distillseg oneshot demo-data``: an atlas with grey/white matter/CSF labels from nilearn's MNI152 template and
   SYNTHETIC subjects made from it (random smooth deformations, head motion, intensity changes);
2. ``distillseg oneshot train`` on the atlas + 2 unlabelled subjects (3 mm working grid, short schedule);
3. ``distillseg oneshot evaluate`` on 2 held-out subjects: Dice and HD95 per tissue of the trained model, and of the
   two floors a user compares it with: the atlas labels with no registration (``--predictor identity``) and after
   the affine pre-alignment only (``--predictor affine``);
4. ``distillseg oneshot segment`` of the held-out subjects, and a PNG of three views per subject with the prediction
   filled and the truth outlined in each.
Everything lands in ``demo_output/`` (or the folder given as the first argument): ``dice.md`` (the tables),
``demo.png``, ``evaluation_*.json``, ``segmentations/`` (load in Slicer) and ``model/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FLOORS = {"identity": "no registration (atlas labels as the headers place them)",
          "affine": "affine pre-alignment only"}


def distillseg(*args: str) -> None:
    command = [sys.executable, "-m", "distillseg", *map(str, args)]
    print("$ distillseg " + " ".join(map(str, args)), flush=True)
    subprocess.run(command, check=True)


def tissue_table(report: dict) -> str:
    """Dice and HD95 (mm) per tissue and subject."""
    names = {value: score["name"] for case in report["cases"] for value, score in case["structures"].items()}
    rows = ["| subject | " + " | ".join(f"{name} Dice / HD95" for name in names.values())
            + " | mean Dice | mean HD95 | segment time |", "|" + "---|" * (len(names) + 4)]
    for case in report["cases"]:
        cells = [f"{case['structures'][v]['dice']:.3f} / {case['structures'][v]['hd95']:.1f} mm" for v in names]
        rows.append(f"| {Path(case['image']).name} | " + " | ".join(cells)
                    + f" | {case['mean_dice']:.3f} | {case['mean_hd95']:.1f} mm | {case['segment_seconds']:.1f} s |")
    return "\n".join(rows)


def floor_table(reports: dict[str, dict]) -> str:
    """Mean Dice and HD95 over subjects and tissues: the model against the floors."""
    rows = ["| labels from | mean Dice | mean HD95 |", "|---|---|---|"]
    for predictor, report in reports.items():
        hd95 = np.mean([case["mean_hd95"] for case in report["cases"]])
        title = FLOORS.get(predictor, "the trained model (student)")
        rows.append(f"| {title} | {report['mean_dice']:.3f} | {hd95:.1f} mm |")
    return "\n".join(rows)


def figure(images: list[Path], segmentations: list[Path], truths: list[Path], table, out: Path) -> None:
    """Axial, coronal and sagittal slices through each subject's centre: the prediction filled, the truth outlined
    in the same colour, so every view shows both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from distillseg.common.volume_io import read_image, read_labels

    entries = table.entries
    colours = [tuple(c / 255 for c in entry.color) for entry in entries]
    filled = ListedColormap([(0, 0, 0, 0)] + [(*c, 0.45) for c in colours])
    top = max(entry.value for entry in entries)
    fig, axes = plt.subplots(len(images), 3, figsize=(11, 3.6 * len(images)))
    axes = np.atleast_2d(axes)
    for row, (image_path, seg_path, truth_path) in enumerate(zip(images, segmentations, truths)):
        image, seg, truth = read_image(image_path).array, read_labels(seg_path).array, read_labels(truth_path).array
        centre = [s // 2 for s in image.shape]
        views = [("axial", lambda a: np.rot90(a[:, :, centre[2]])), ("coronal", lambda a: np.rot90(a[:, centre[1], :])),
                 ("sagittal", lambda a: np.rot90(a[centre[0], :, :]))]
        for col, (name, cut) in enumerate(views):
            ax = axes[row, col]
            ax.imshow(cut(image), cmap="gray")
            ax.imshow(cut(seg), cmap=filled, vmin=0, vmax=top, interpolation="nearest")
            for entry, colour in zip(entries, colours):
                mask = cut(truth == entry.value).astype(float)
                if mask.any():
                    ax.contour(mask, levels=[0.5], colors=[colour], linewidths=0.9)
            ax.set_title(f"{image_path.name}: {name}", fontsize=9)
            ax.axis("off")
    handles = [Patch(color=(*c, 0.6), label=f"{e.name} (prediction)") for e, c in zip(entries, colours)]
    handles.append(Line2D([], [], color="black", linewidth=0.9, label="outline: truth"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle("OneShotSeg demo on SYNTHETIC subjects (MNI152 template, deformed): prediction filled, truth "
                 "outlined", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(out, dpi=90)


def main() -> int:
    from distillseg.oneshot.demo_data import TISSUES

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
    reports = {}
    for predictor in ("identity", "affine", "student"):
        report = out / f"evaluation_{predictor}.json"
        distillseg("oneshot", "evaluate", "--model", model, "--images", *tests, "--labels", *truths,
                   "--predictor", predictor, "--report", report)
        reports[predictor] = json.loads(report.read_text(encoding="utf-8"))
    distillseg("oneshot", "segment", "--model", model, "--input", *tests, "--output", out / "segmentations",
               "--format", ".seg.nrrd")
    segmentations = [out / "segmentations" / p.name.replace(".nii.gz", "_seg.seg.nrrd") for p in tests]
    figure(tests, segmentations, truths, TISSUES, out / "demo.png")
    text = ("Demo on SYNTHETIC subjects (MNI152 template, deformed).\n\nThe trained model per tissue:\n\n"
            + tissue_table(reports["student"]) + "\n\nAgainst the floors (what a model must beat):\n\n"
            + floor_table(reports) + "\n")
    (out / "dice.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    print(f"Whole demo {time.time() - started:.0f} s. Results in {out}: dice.md, demo.png, segmentations/, model/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
