"""``segment``'s use of the per-scan refined registration, from the real CLI: ``--refine-smooth-weight`` sets how
far that refinement may bend (default: as the model's training refined; the similarity window and step size are
always the training's), and ``--registration-fusion W`` averages the student's probabilities with the refined warp
of the atlas labels (W = 1 is the registration alone, so it must equal ``--predictor augmenter``)."""

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


def _with_record(tiny, folder, **changes):
    """A copy of the tiny model whose manifest records other refinement options (None: the key removed)."""
    model = shutil.copytree(tiny.model, folder / f"model {len(list(folder.glob('model *')))}")
    manifest = json.loads((model / "manifest.json").read_text())
    options = manifest["training"]["options"]["augmenter"]
    for name, value in changes.items():
        options.pop(name) if value is None else options.update({name: value})
    (model / "manifest.json").write_text(json.dumps(manifest))
    return model


def test_the_refinement_smoothness_is_the_trainings_unless_set(tiny, tmp_path):
    trained = json.loads((tiny.model / "manifest.json").read_text())["training"]["options"]["augmenter"]
    assert trained["smooth_weight"] == 1.0 and trained["refine_smooth_weight"] is None
    registered = _segmented(tiny, tmp_path / "default.nii.gz", "--predictor", "augmenter")
    explicit = _segmented(tiny, tmp_path / "explicit.nii.gz", "--predictor", "augmenter", "--refine-smooth-weight", 1)
    np.testing.assert_array_equal(explicit, registered)
    stiff = _segmented(tiny, tmp_path / "stiff.nii.gz", "--predictor", "augmenter", "--refine-smooth-weight", 1e3)
    assert (stiff != registered).sum() > 0, "a far stiffer refinement must place the labels otherwise"
    # a model trained with another refinement smoothness (or from before the option: its smooth_weight) refines so
    for record in ({"refine_smooth_weight": 1e3}, {"refine_smooth_weight": None, "smooth_weight": 1e3}):
        model = _with_record(tiny, tmp_path, **record)
        np.testing.assert_array_equal(
            _segmented(tiny, tmp_path / "recorded.nii.gz", "--predictor", "augmenter", model=model), stiff)


def test_the_fusion_weight_runs_from_the_student_to_the_registration(tiny, tmp_path):
    registered = _segmented(tiny, tmp_path / "registered.nii.gz", "--predictor", "augmenter")
    np.testing.assert_array_equal(_segmented(tiny, tmp_path / "w1.nii.gz", "--registration-fusion", 1), registered)
    student = _segmented(tiny, tmp_path / "w0.nii.gz", "--registration-fusion", 0, "--no-registration-union")
    assert not np.array_equal(_segmented(tiny, tmp_path / "default.nii.gz"), registered)  # off by default
    fused = _segmented(tiny, tmp_path / "fused.nii.gz", "--registration-fusion", 0.5)
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


@pytest.mark.parametrize("record", [{"window": 0}, {"refine_smooth_weight": -1}, {"smooth_weight": "soft"}])
def test_a_damaged_refinement_record_is_refused_in_one_sentence(tiny, tmp_path, record):
    model = _with_record(tiny, tmp_path, **record)
    out = tmp_path / "out.nii.gz"
    result = distillseg("oneshot", "segment", "--model", model, "--input", tiny.case["scans"][0], "--output", out,
                        "--predictor", "augmenter", "--device", "cpu")
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and next(iter(record)) in message, message
    assert not out.exists()


def _segment_progress(tiny, tmp_path, *options) -> list[dict]:
    """The ``segment`` stage's progress events of a two-scan job with ``--progress jsonl``."""
    scans = [tmp_path / "scan a.nii.gz", tmp_path / "scan b.nii.gz"]
    for scan in scans:
        shutil.copyfile(tiny.case["scans"][0], scan)
    result = checked(distillseg("oneshot", "segment", "--model", tiny.model, "--input", *scans, "--output",
                                tmp_path / f"out{len(list(tmp_path.glob('out*')))}", "--device", "cpu", "--threads",
                                ENGINE_THREADS, "--progress", "jsonl", *options))
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [e for e in events if e["event"] == "progress" and e["stage"] == "segment"]


def test_the_per_scan_refinement_moves_the_one_progress_stage(tiny, tmp_path):
    """A refining job reports each scan as its refinement's iterations plus one step, so Slicer's one bar moves
    during the minute a scan refines instead of standing still; without a refinement a step is still a scan."""
    refining = _segment_progress(tiny, tmp_path, "--predictor", "augmenter", "--refine-iterations", 5)
    assert {e["total"] for e in refining} == {2 * (5 + 1)}
    steps = [e["step"] for e in refining]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 12, steps
    assert isinstance(refining[0]["loss"], float), "a refinement step carries the refinement's loss"
    plain = _segment_progress(tiny, tmp_path, "--predictor", "student", "--no-registration-union")
    assert [(e["step"], e["total"]) for e in plain] == [(1, 2), (2, 2)]
