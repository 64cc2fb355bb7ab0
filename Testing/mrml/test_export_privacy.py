"""A model carries no trace of where its inputs were: file and folder names in hospitals often hold patient names or
IDs. Inputs named after a (fictional) patient are trained on with the real CLI; every file of the model's exported
zip (made by the kernel's model store, as the Export button does), of the checkpoint a cancelled training keeps, and
of the check reports the IncrementalLap module keeps in a model, is searched for the paths, the folder and file
names and their stems."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from conftest import ENGINE_THREADS, REPO
from DistillSegKernelLib.modelStore import ModelStore
from synthetic_volumes import write_case
from tiny_models import checked, distillseg

PATIENT_FOLDER = "Doe^John MRN-4471203"
PATIENT_FILE = "Roe_Jane_1961-04-02"


def _identifying(paths) -> set[str]:
    """Every string that would give an input away: whole paths, folder and file names, stems."""
    found = set()
    for path in paths:
        found |= {str(path), path.name, path.name.split(".")[0], path.parent.name, str(path.parent)}
    return {text for text in found if len(text) > 4} | {"MRN-4471203", "Roe_Jane"}


def _leaks(blobs: dict[str, bytes], identifying: set[str]) -> list[str]:
    return [f"{name}: {text!r}" for name, data in blobs.items() for text in identifying
            if text.encode("utf-8") in data or text.encode("utf-16-le") in data]


@pytest.fixture(scope="module")
def patientCase(tmp_path_factory):
    folder = tmp_path_factory.mktemp("privacy") / PATIENT_FOLDER
    case = write_case(folder, shape=(24, 24, 24), unlabeled=1)
    renamed = {}
    for key in ("atlas", "atlas_labels"):
        renamed[key] = case[key].rename(folder / f"{PATIENT_FILE}_{key}.nii.gz")
    renamed["scan"] = case["scans"][0].rename(folder / f"{PATIENT_FILE}_followup.nii.gz")
    return folder, renamed


def _train(case, out, *extra):
    return distillseg("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                      "--unlabeled", case["scan"], "--out", out, "--device", "cpu", "--threads", ENGINE_THREADS,
                      "--spacing", "atlas", "--no-prealign", *extra)


def test_an_exported_oneshot_model_names_none_of_its_inputs(patientCase, tmp_path):
    folder, case = patientCase
    store = ModelStore("oneshot", tmp_path / "models")
    checked(_train(case, store.folder / "brain model", "--iterations", "2", "--augmenter-iterations", "1",
                   "--description", "three phantoms"))
    archive = store.exportZip("brain model", tmp_path / "export" / "brain model.zip")
    with zipfile.ZipFile(archive) as bundle:
        blobs = {name: bundle.read(name) for name in bundle.namelist()}
    assert any(name.endswith("manifest.json") for name in blobs)
    assert _leaks(blobs, _identifying(case.values())) == []
    assert b"three phantoms" in blobs["brain model/manifest.json"]  # what the user chose to say is kept
    assert b'"sha256"' in blobs["brain model/manifest.json"]  # inputs are recorded by content


@pytest.fixture(scope="module")
def patientFrames(tmp_path_factory):
    data = tmp_path_factory.mktemp("frames") / PATIENT_FOLDER
    checked(distillseg("lap", "demo-data", "--out", data, "--patients", "2", "--frames-per-patient", "2",
                       "--size", "64", "80"))
    return data


def _cancelledTraining(command: list, checkpoint) -> dict[str, bytes]:
    """Start a long training, cancel it (SIGTERM, as the Slicer job runner does) once its first checkpoint is
    written, and return the checkpoint's files."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "distillseg", *map(str, command)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (checkpoint / "state.json").is_file() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    assert (checkpoint / "state.json").is_file(), "the cancelled training kept no checkpoint"
    return {path.name: path.read_bytes() for path in checkpoint.iterdir()}


def test_a_kept_oneshot_checkpoint_names_none_of_its_inputs(patientCase, tmp_path):
    folder, case = patientCase
    out = tmp_path / "models" / "long"
    blobs = _cancelledTraining(["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                                "--unlabeled", case["scan"], "--out", out, "--device", "cpu", "--threads", ENGINE_THREADS,
                                "--spacing", "atlas", "--no-prealign", "--iterations", "5000",
                                "--augmenter-iterations", "1", "--checkpoint-every", "1"],
                               out.with_name("long.checkpoint"))
    assert _leaks(blobs, _identifying(case.values())) == []


def test_a_kept_lap_checkpoint_names_none_of_its_inputs(patientFrames, tmp_path):
    out = tmp_path / "models" / "long"
    blobs = _cancelledTraining(["lap", "train", "--data", patientFrames, "--classes", "liver", "--out", out,
                                "--size", "64", "64", "--iterations", "5000", "--diffusion-iterations", "0",
                                "--batch-size", "2", "--checkpoint-every", "1", "--device", "cpu", "--threads", ENGINE_THREADS],
                               out.with_name("long.checkpoint"))
    assert _leaks(blobs, {str(patientFrames), patientFrames.name, "MRN-4471203", str(tmp_path)}) == []


def test_lap_models_and_their_check_reports_name_no_input(patientFrames, tmp_path):
    data = patientFrames
    store = ModelStore("lap", tmp_path / "models")
    tiny = ["--iterations", "2", "--diffusion-iterations", "0", "--batch-size", "2", "--device", "cpu",
            "--threads", ENGINE_THREADS]
    checked(distillseg("lap", "train", "--data", data, "--classes", "liver", "--patients", "01",
                       "--out", store.folder / "base", "--size", "64", "64", *tiny))
    checked(distillseg("lap", "learn", "--model", store.folder / "base", "--data", data, "--new-classes", "colon",
                       "--patients", "02", "--out", store.folder / "next", "--replay", "0", *tiny))
    checked(distillseg("lap", "evaluate", "--model", store.folder / "next", "--data", data, "--classes",
                       "liver,colon", "--report", store.folder / "next" / "check_after.json", "--device", "cpu"))
    archive = store.exportZip("next", tmp_path / "next.zip")
    with zipfile.ZipFile(archive) as bundle:
        blobs = {name: bundle.read(name) for name in bundle.namelist()}
    assert "next/check_after.json" in blobs
    assert _leaks(blobs, {str(data), data.name, "MRN-4471203", str(tmp_path)}) == []
