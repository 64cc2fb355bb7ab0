"""``segment``'s use of the per-scan refined registration, from the real CLI: ``--refine-smooth-weight`` sets how
far that refinement may bend (the similarity window and step size stay the model's training's), and
``--registration-fusion W`` averages the student's probabilities with the refined warp of the atlas labels (W = 1
is the registration alone, so it must equal ``--predictor augmenter``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from distillseg.common.volume_io import read_labels
from tiny_models import ENGINE_THREADS, checked, distillseg, oneshot_fixture


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


def _segmented(tiny, out, *options, model=None):
    checked(distillseg("oneshot", "segment", "--model", model or tiny.model, "--input", tiny.case["scans"][0],
                       "--output", out, "--refine-iterations", 40, "--device", "cpu", "--threads", ENGINE_THREADS,
                       "--progress", "none", *options))
    return np.asarray(read_labels(out).array)


def test_the_refinement_smoothness_bends_the_registration(tiny, tmp_path):
    registered = _segmented(tiny, tmp_path / "default.nii.gz", "--predictor", "augmenter")
    explicit = _segmented(tiny, tmp_path / "explicit.nii.gz", "--predictor", "augmenter", "--refine-smooth-weight",
                          0.25)
    np.testing.assert_array_equal(explicit, registered)
    stiff = _segmented(tiny, tmp_path / "stiff.nii.gz", "--predictor", "augmenter", "--refine-smooth-weight", 1e3)
    assert (stiff != registered).sum() > 0, "a far stiffer refinement must place the labels otherwise"


def test_the_fusion_weight_runs_from_the_student_to_the_registration(tiny, tmp_path):
    registered = _segmented(tiny, tmp_path / "registered.nii.gz", "--predictor", "augmenter")
    np.testing.assert_array_equal(_segmented(tiny, tmp_path / "w1.nii.gz", "--registration-fusion", 1), registered)
    student = _segmented(tiny, tmp_path / "w0.nii.gz", "--registration-fusion", 0, "--no-registration-union")
    fused = _segmented(tiny, tmp_path / "fused.nii.gz")                       # the default: W = 0.5
    # each voxel of the average takes one of its two parts' labels unless they disagree
    agree = student == registered
    assert not agree.all(), "the tiny model's student and registration should disagree somewhere"
    np.testing.assert_array_equal(fused[agree], student[agree])


@pytest.mark.parametrize("option, value", [("--registration-fusion", "1.5"), ("--registration-fusion", "-0.1"),
                                           ("--registration-fusion", "nan"), ("--refine-smooth-weight", "-1")])
def test_out_of_range_values_are_refused_before_any_work(tiny, tmp_path, option, value):
    out = tmp_path / "out.nii.gz"
    result = distillseg("oneshot", "segment", "--model", tiny.model, "--input", tiny.case["scans"][0], "--output",
                        out, "--device", "cpu", option, value)
    assert result.returncode == 2 and option in result.stderr, result.stderr[-2000:]
    assert not out.exists()


def test_a_damaged_refinement_record_is_refused_in_one_sentence(tiny, tmp_path):
    model = shutil.copytree(tiny.model, tmp_path / "model")
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["training"]["options"]["augmenter"]["window"] = 0
    (model / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "out.nii.gz"
    result = distillseg("oneshot", "segment", "--model", model, "--input", tiny.case["scans"][0], "--output", out,
                        "--device", "cpu")
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "window" in message, message
    assert not out.exists()
