"""Tiny real inputs and models for the reliability tests, made once per pytest session and shared between modules.

Everything lives under pytest's session temporary folder (``tmp_path_factory.getbasetemp()``), in folders whose
names hold spaces and non-ASCII letters on purpose: every test that uses them shows that such paths work. Models are
trained by the real CLI in a child process (``distillseg oneshot train`` / ``distillseg lap train``) with the
smallest settings that still run every stage.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import ENGINE_THREADS, REPO
from synthetic_volumes import write_case

ONESHOT_TINY = ["--iterations", "2", "--augmenter-iterations", "1", "--spacing", "atlas", "--device", "cpu",
                "--threads", ENGINE_THREADS, "--no-prealign", "--checkpoint-every", "1"]
LAP_TINY = ["--size", "64", "64", "--iterations", "3", "--diffusion-iterations", "0", "--batch-size", "2",
            "--checkpoint-every", "1", "--device", "cpu", "--threads", ENGINE_THREADS]
ODD_FOLDER = "tiny ü é 脳"   # spaces and non-ASCII letters in every shared path


def distillseg(*args, timeout: float = 600, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``python -m distillseg ARGS`` (optionally under ``prefix``, e.g. ``setpriv …``); never raises."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*prefix, sys.executable, "-m", "distillseg", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=timeout)


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@dataclass
class OneShotFixture:
    """``case``: paths of ``synthetic_volumes.write_case`` (24³ phantom, one unlabelled scan); ``model``: a bundle."""

    case: dict
    model: Path


@dataclass
class LapFixture:
    """``demo``: SYNTHETIC frames in the DSAD layout (2 patients x 2 frames, 72x88); ``model``: a step-0 bundle of
    stomach and colon."""

    demo: Path
    model: Path


def _shared(tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / ODD_FOLDER
    folder.mkdir(exist_ok=True)
    return folder


def oneshot_fixture(tmp_path_factory) -> OneShotFixture:
    """The shared one-shot case and a model trained on it (trained on first use in the session)."""
    folder = _shared(tmp_path_factory)
    case = write_case(folder / "case ö", shape=(24, 24, 24), unlabeled=1) \
        if not (folder / "case ö").is_dir() else _case_paths(folder / "case ö")
    model = folder / "models ä" / "tiny model"
    if not model.is_dir():
        checked(distillseg("oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                           "--unlabeled", *case["scans"], "--out", model, *ONESHOT_TINY, "--progress", "none"))
    return OneShotFixture(case, model)


def _case_paths(folder: Path) -> dict:
    return {"atlas": folder / "atlas.nii.gz", "atlas_labels": folder / "atlas_labels.nii.gz",
            "scans": [folder / "scan0.nii.gz"], "scan_labels": [folder / "scan0_labels.nii.gz"]}


def lap_fixture(tmp_path_factory) -> LapFixture:
    """The shared SYNTHETIC frames and a step-0 IncrementalLap model trained on them (on first use)."""
    folder = _shared(tmp_path_factory)
    demo, model = folder / "demo frames", folder / "models ä" / "lap model"
    if not demo.is_dir():
        checked(distillseg("lap", "demo-data", "--out", demo, "--patients", 2, "--frames-per-patient", 2,
                           "--size", 72, 88, "--progress", "none"))
    if not model.is_dir():
        checked(distillseg("lap", "train", "--data", demo, "--classes", "stomach,colon", "--out", model, *LAP_TINY,
                           "--progress", "none"))
    return LapFixture(demo, model)
