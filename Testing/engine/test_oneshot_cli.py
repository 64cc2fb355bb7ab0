"""The one-shot CLI end to end on a tiny phantom: train -> segment on the input's exact grid, resume after a kill,
evaluate, and one-sentence errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from conftest import ENGINE_THREADS, REPO, random_affine
from distillseg.common.bundle import load_bundle
from distillseg.common.volume_io import read_image, read_labels, write_image, write_labels
from synthetic_volumes import write_case

TINY = ["--iterations", "3", "--augmenter-iterations", "2", "--spacing", "atlas", "--device", "cpu",
        "--threads", ENGINE_THREADS, "--checkpoint-every", "1"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "distillseg", *map(str, args)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oneshot")
    return write_case(folder, shape=(32, 32, 32), unlabeled=2)


@pytest.fixture(scope="module")
def model(case, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "tiny model"  # a space in the path on purpose
    run("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
        "--unlabeled", *case["scans"], "--out", out, "--no-prealign", *TINY)
    return out


def test_bundle_describes_the_atlas_labels(model):
    bundle = load_bundle(model, method="oneshot")
    assert bundle.manifest["class_values"] == [0, 1, 2, 5]
    assert [e["value"] for e in bundle.manifest["labels"]] == [1, 2, 5]
    assert set(bundle.weight_names()) == {"student", "augmenter", "atlas"}
    assert not Path(str(model) + ".checkpoint").exists()
    info = json.loads(run("model", "info", model, "--json").stdout)
    assert info["method"] == "oneshot" and info["software"]["torch"] and info["training"]["inputs"]
    summary = run("model", "info", model).stdout
    for line in ("Method: OneShotSeg", "Structures: ", "Trained from: 1 atlas, 1 atlas labels, 2 unlabelled",
                 "Made with: distillseg ", "Size: "):
        assert line in summary, summary
    assert "{" not in summary and str(model.parent) not in summary.splitlines()[1:]


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".seg.nrrd"])
def test_segment_writes_on_the_inputs_exact_oblique_grid(model, case, tmp_path, suffix):
    scan = read_image(case["scans"][0])
    affine = random_affine(np.random.default_rng(5), spacing=(1.5, 1.5, 2.0), flip=(True, False, False))
    moved = write_image(tmp_path / ("moved" + (".nrrd" if suffix != ".nii.gz" else ".nii.gz")), scan.array, affine)
    out = tmp_path / f"labels{suffix}"
    run("oneshot", "segment", "--model", model, "--input", moved, "--output", out, "--device", "cpu",
        "--progress", "jsonl")
    labels = read_labels(out)
    assert labels.shape == scan.shape
    np.testing.assert_allclose(labels.affine, affine, atol=1e-4)
    assert set(np.unique(labels.array)) <= {0, 1, 2, 5}
    if suffix == ".seg.nrrd":
        assert sorted(labels.labels.values) == [1, 2, 5]


def test_segment_folder_mode_and_evaluate(model, case, tmp_path):
    run("oneshot", "segment", "--model", model, "--input", *case["scans"], "--output", tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["scan0_seg.nii.gz", "scan1_seg.nii.gz"]
    report = tmp_path / "report.json"
    run("oneshot", "evaluate", "--model", model, "--images", *case["scans"], "--labels", *case["scan_labels"],
        "--report", report)
    data = json.loads(report.read_text())
    assert len(data["cases"]) == 2 and set(data["cases"][0]["structures"]) == {"1", "2", "5"}
    assert 0.0 <= data["mean_dice"] <= 1.0


@pytest.mark.parametrize("extra", [(), ("--hint-weight", "1", "--hint-adapter")], ids=["default", "hint_adapter"])
def test_killed_training_resumes_to_the_same_weights(case, tmp_path, extra):
    # The hint adapters train beside the student: a resume that did not restore them would drift from the straight run.
    common = ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
              "--unlabeled", *case["scans"], "--no-prealign", *TINY, "--iterations", "40", "--refine-iterations", "5",
              "--progress", "jsonl", *extra]
    run(*common, "--out", tmp_path / "straight")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "distillseg", *map(str, common), "--out", tmp_path / "killed"],
                               stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    for line in process.stdout:
        event = json.loads(line)
        # A step's progress line comes before its checkpoint: at a line of step 3 or later, step 2's checkpoint is on
        # disk (step 1 runs at the warm-up's learning rate 0, so a checkpoint of step 1 would hold the starting
        # weights). "Or later": step lines are throttled to one per 0.5 s, so step 3's own line may never come (two
        # clean-clone runs under xdist waited for it to the end of the training). The steps after it leave this
        # process seconds to read a line and kill even on two busy cores.
        if event.get("stage") == "distill" and event.get("step", 0) >= 3:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert not (tmp_path / "killed").exists(), "a killed run must leave no bundle"
    # The checkpoint, or, killed between the two renames of its replacement, the previous one (put back on resume).
    saved = [tmp_path / "killed.checkpoint", *tmp_path.glob(".killed.checkpoint.old-*")]
    state = next(json.loads((f / "state.json").read_text()) for f in saved if (f / "state.json").is_file())
    assert state["stage"] == "distill" and 2 <= state["steps"]["distill"] < 40, "the kill must land inside distill"
    run(*common, "--out", tmp_path / "killed", "--resume")
    straight = load_bundle(tmp_path / "straight").load_weights("student")
    resumed = load_bundle(tmp_path / "killed").load_weights("student")
    assert all(np.array_equal(straight[k].numpy(), resumed[k].numpy()) for k in straight)


def _assert_clean_failure(result, fragment, *paths_absent):
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and fragment in message, message
    for path in paths_absent:
        assert not Path(path).exists()


def test_bad_training_inputs(case, tmp_path):
    atlas = read_image(case["atlas"])
    write_labels(tmp_path / "empty.nii.gz", np.zeros(atlas.shape, np.int16), atlas.affine)
    shifted = atlas.affine.copy()
    shifted[:3, 3] += 5
    write_labels(tmp_path / "moved.nii.gz", read_labels(case["atlas_labels"]).array, shifted)
    nan = atlas.array.copy()
    nan[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(nan, atlas.affine), str(tmp_path / "nan.nii.gz"))
    nib.save(nib.Nifti1Image(atlas.array[:, :, 0], atlas.affine), str(tmp_path / "flat.nii.gz"))
    out = tmp_path / "model"
    base = ["oneshot", "train", "--out", out, *TINY]
    cases = [
        (["--atlas", case["atlas"], "--atlas-labels", tmp_path / "empty.nii.gz", "--unlabeled", case["scans"][0]],
         "empty"),
        (["--atlas", case["atlas"], "--atlas-labels", tmp_path / "moved.nii.gz", "--unlabeled", case["scans"][0]],
         "not on the atlas image's grid"),
        (["--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"], "--unlabeled", tmp_path / "nan.nii.gz"],
         "NaN"),
        (["--atlas", tmp_path / "flat.nii.gz", "--atlas-labels", case["atlas_labels"], "--unlabeled",
          case["scans"][0]], "3D"),
    ]
    for arguments, fragment in cases:
        _assert_clean_failure(run(*base, *arguments, check=False), fragment, out)


def test_training_that_cannot_fit_the_memory_budget_stops_first(case, tmp_path):
    out = tmp_path / "model"
    result = run("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                 "--unlabeled", case["scans"][0], "--out", out, "--no-prealign", *TINY, "--max-memory", "300M",
                 check=False)
    assert result.returncode == 3, result.stderr
    assert "--patch-size" in result.stderr and "needs about" in result.stderr
    assert not out.exists()


def test_bad_model_folders(case, tmp_path):
    (tmp_path / "not a model").mkdir()
    out = tmp_path / "seg.nii.gz"
    result = run("oneshot", "segment", "--model", tmp_path / "not a model", "--input", case["scans"][0],
                 "--output", out, check=False)
    _assert_clean_failure(result, "no manifest.json", out)
    lap = tmp_path / "lap"
    lap.mkdir()
    (lap / "manifest.json").write_text(json.dumps({"method": "lap", "format_version": 1}))
    result = run("oneshot", "segment", "--model", lap, "--input", case["scans"][0], "--output", out, check=False)
    _assert_clean_failure(result, "IncrementalLap", out)
