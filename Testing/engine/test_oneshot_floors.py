"""The floors a user compares a model with, from the real CLI: ``--predictor identity`` places the atlas labels
where the headers put them, ``--predictor affine`` after the affine pre-alignment only; on a scan whose header was
moved away from the atlas, the second recovers the atlas labels and the first does not. And the demo's tables and
picture are made from such evaluation reports."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import ENGINE_THREADS, REPO
from distillseg.common.metrics import structure_scores
from distillseg.common.volume_io import read_image, read_labels, write_image, write_labels
from synthetic_volumes import phantom
from tiny_models import checked, distillseg

sys.path.insert(0, str(REPO / "scripts"))
import demo  # noqa: E402  (the README's demo script)


@pytest.fixture(scope="module")
def prealigned(tmp_path_factory):
    """A tiny model trained WITH pre-alignment, and a copy of the atlas whose header is rotated and shifted."""
    folder = tmp_path_factory.mktemp("floors")
    image, labels = phantom((32, 32, 32))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    atlas = write_image(folder / "atlas.nii.gz", image, affine)
    atlas_labels = write_labels(folder / "atlas_labels.nii.gz", labels, affine)
    angle = np.deg2rad(12.0)
    moved_affine = np.eye(4)
    moved_affine[:3, :3] = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                                     [0, 0, 1]]) @ np.diag([2.0, 2.0, 2.0])
    moved_affine[:3, 3] = (9.0, -7.0, 5.0)
    moved = write_image(folder / "moved.nii.gz", image, moved_affine)
    moved_truth = write_labels(folder / "moved_labels.nii.gz", labels, moved_affine)  # same voxels: same anatomy
    model = folder / "model"
    checked(distillseg("oneshot", "train", "--atlas", atlas, "--atlas-labels", atlas_labels, "--unlabeled", moved,
                       "--out", model, "--iterations", "2", "--augmenter-iterations", "1", "--spacing", "atlas",
                       "--device", "cpu", "--threads", ENGINE_THREADS))
    return folder, model, moved, moved_truth


@pytest.mark.parametrize("predictor, floor", [("identity", None), ("affine", 0.85)])
def test_the_floors_place_the_atlas_labels_without_a_network(prealigned, predictor, floor):
    folder, model, moved, truth = prealigned
    out = folder / f"{predictor}.nii.gz"
    checked(distillseg("oneshot", "segment", "--model", model, "--input", moved, "--output", out,
                       "--predictor", predictor, "--device", "cpu"))
    labels, expected = read_labels(out), read_labels(truth)
    np.testing.assert_allclose(labels.affine, expected.affine, atol=1e-4)  # on the scan's own grid
    dice = np.mean([s["dice"] for s in structure_scores(labels.array, expected.array, [1, 2, 5], hd95=False).values()])
    if floor is None:
        assert dice < 0.6, "with no registration the moved header must misplace the labels"
    else:
        assert dice > floor, "the affine pre-alignment should recover a moved header"


def test_the_demo_reports_the_model_beside_its_floors_with_hd95(prealigned, tmp_path):
    folder, model, moved, truth = prealigned
    reports = {}
    for predictor in ("identity", "affine", "student"):
        report = tmp_path / f"{predictor}.json"
        done = checked(distillseg("oneshot", "evaluate", "--model", model, "--images", moved, "--labels", truth,
                                  "--predictor", predictor, "--report", report, "--device", "cpu"))
        assert "Warning" not in done.stderr  # dependencies' deprecation notices stay off the user's screen
        reports[predictor] = json.loads(report.read_text())
    floors = demo.floor_table(reports)
    assert "no registration" in floors and "affine pre-alignment only" in floors and "trained model" in floors
    assert demo.tissue_table(reports["student"]).count(" mm") >= 3  # HD95 per tissue, in millimetres
    from distillseg.contract.labels import LabelEntry, LabelTable

    table = LabelTable([LabelEntry(1, "a", (230, 159, 0)), LabelEntry(2, "b", (0, 114, 178)),
                        LabelEntry(5, "c", (0, 158, 115))])
    demo.figure([moved], [truth], [truth], table, tmp_path / "demo.png")
    assert (tmp_path / "demo.png").stat().st_size > 10_000
    assert read_image(moved).shape == (32, 32, 32)
