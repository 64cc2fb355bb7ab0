"""Interrupted trainings, both methods, through the real CLI in child processes:

- a first training SIGKILLed at a random moment (a random progress event plus a random delay) leaves no bundle;
  ``--resume`` continues from its last checkpoint (or, killed before the first one, says there is none) and ends
  with exactly the weights of an uninterrupted run, leaving no temporary file behind;
- a retraining over an existing bundle SIGKILLed at a random moment (the bundle write included) leaves the previous
  bundle intact and loadable, or the complete new one, never a mix;
- a second job writing the same model folder is refused with the "another job" sentence while the first runs.

The kill plan is drawn afresh on every run and printed with any failure. ``test_oneshot_cli`` and ``test_lap_cli``
already cover a kill at one fixed step (oneshot) and a cancel (lap); these add the random moment, the retraining
over a bundle and the lock between two processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from distillseg.contract.atomic import OutputLock
from distillseg.common.bundle import load_bundle
from tiny_models import LAP_TINY, ONESHOT_TINY, distillseg, lap_fixture, oneshot_fixture


def _popen(argv) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "distillseg", *map(str, argv), "--progress", "jsonl"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO)


def _events(process: subprocess.Popen):
    for line in process.stdout:
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "progress":
            yield event


def kill_at_random_moment(argv, schedule: list[tuple[str, int]], rng: random.Random) -> str:
    """Run ``argv`` and SIGKILL it at a random (stage, step) of ``schedule`` (or the first event after it, since
    events may be rate-limited) plus a random delay; returns the plan, for failure messages."""
    stage, step = rng.choice(schedule)
    delay = rng.uniform(0.0, 0.3)
    order = {name: index for index, name in enumerate(dict.fromkeys(s for s, _ in schedule))}
    process = _popen(argv)
    for event in _events(process):
        here = (order.get(event["stage"], -1), event["step"])
        if here >= (order[stage], step):
            threading.Timer(delay, process.send_signal, (signal.SIGKILL,)).start()
            break
    process.stdout.close()
    code = process.wait(timeout=120)
    return f"kill after {stage} step {step} + {delay:.2f} s (exit {code})"


def _weights(model: Path) -> dict[str, np.ndarray]:
    """Every tensor of every weight file, each checked against the manifest's SHA-256 on the way."""
    bundle = load_bundle(model)
    return {f"{name}/{key}": value.numpy() for name in bundle.weight_names()
            for key, value in bundle.load_weights(name).items()}


def _assert_same_weights(a: Path, b: Path, plan: str) -> None:
    first, second = _weights(a), _weights(b)
    assert first.keys() == second.keys(), plan
    different = [k for k in first if not np.array_equal(first[k], second[k])]
    assert not different, f"{plan}: {different[:3]}"


def _leftovers(model: Path) -> list[str]:
    return [p.name for p in model.parent.iterdir() if p.name.startswith(f".{model.name}.")
            and not p.name.endswith(".lock")]


@pytest.fixture(scope="module")
def rng():
    seed = int.from_bytes(os.urandom(4), "little")
    print(f"kill plans drawn with seed {seed}")
    return random.Random(seed)


@pytest.fixture(scope="module")
def oneshot(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def lap(tmp_path_factory):
    return lap_fixture(tmp_path_factory)


def _oneshot_train(oneshot, out, *extra):
    case = oneshot.case
    return ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"], "--unlabeled",
            *case["scans"], "--out", out, *ONESHOT_TINY, *extra]


def _lap_train(lap, out, *extra):
    return ["lap", "train", "--data", lap.demo, "--classes", "stomach,colon", "--out", out, *LAP_TINY, *extra]


# (stage, step) at which a kill may come: early enough in first trainings that the bundle is rarely complete when
# it lands; retrainings add the last step, so the kill may also hit the bundle being written.
ONESHOT_SCHEDULE = [("prealign", 1), ("augmenter", 1), ("distill", 1)]
LAP_SCHEDULE = [("read frames", 1), ("segmenter", 1)]


def _seed_of(manifest: dict) -> int:
    """The --seed a bundle was trained with (oneshot: training options; lap: its last step's options)."""
    options = manifest["training"]["options"] if manifest["method"] == "oneshot" else manifest["history"][-1]["options"]
    return int(options["seed"])


@pytest.mark.parametrize("method", ["oneshot", "lap"])
def test_first_training_killed_leaves_no_bundle_and_resumes_to_the_same_weights(method, oneshot, lap, rng,
                                                                                 tmp_path):
    fixture, train, schedule = ((oneshot, _oneshot_train, ONESHOT_SCHEDULE) if method == "oneshot"
                                else (lap, _lap_train, LAP_SCHEDULE))
    out = tmp_path / "killed model"
    plan = kill_at_random_moment(train(fixture, out), schedule, rng)
    checkpoint = out.with_name(out.name + ".checkpoint")
    if out.exists():  # the kill came only after the bundle was complete: it must be whole
        assert not checkpoint.exists(), plan
    else:
        # A checkpoint, or one killed between the two renames of its replacement (put back by the next run).
        saved = (checkpoint / "state.json").is_file() or any(out.parent.glob(f".{checkpoint.name}.old-*"))
        resumed = distillseg(*train(fixture, out, "--resume", "--progress", "none"))
        if not saved:
            # Killed before its first checkpoint: nothing to resume, said in one sentence (both methods: --resume
            # means the same in both since issue 17; lap used to start over silently); a new run starts over.
            assert resumed.returncode == 2 and "no checkpoint to resume from" in resumed.stderr, f"{plan}: {resumed}"
            resumed = distillseg(*train(fixture, out, "--progress", "none"))
        assert resumed.returncode == 0, f"{plan}: {resumed.stderr[-2000:]}"
        assert not checkpoint.exists() and not _leftovers(out), f"{plan}: {_leftovers(out)}"
    _assert_same_weights(fixture.model, out, plan)


@pytest.mark.parametrize("method", ["oneshot", "lap"])
def test_retraining_killed_keeps_the_previous_bundle(method, oneshot, lap, rng, tmp_path):
    fixture, train, schedule = ((oneshot, _oneshot_train, ONESHOT_SCHEDULE + [("distill", 2)])
                                if method == "oneshot" else (lap, _lap_train, LAP_SCHEDULE + [("segmenter", 3)]))
    out = tmp_path / "model"
    shutil.copytree(fixture.model, out)
    before = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    plan = kill_at_random_moment(train(fixture, out, "--seed", "7"), schedule, rng)
    after = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    if after == before:
        _assert_same_weights(fixture.model, out, plan)  # the previous bundle, whole
    else:  # the kill came after the new bundle was complete: it must be whole too
        assert _seed_of(after) == 7, plan
        _weights(out)


@pytest.mark.parametrize("method", ["oneshot", "lap"])
def test_second_job_on_the_same_model_folder_is_refused(method, oneshot, lap, tmp_path):
    fixture, train = (oneshot, _oneshot_train) if method == "oneshot" else (lap, _lap_train)
    out = tmp_path / "shared model"
    first = _popen(train(fixture, out, "--iterations", "100000"))  # still running when the second job starts
    try:
        next(_events(first))  # the first job is under way: it holds the model folder's lock
        second = distillseg(*train(fixture, out, "--progress", "none"))
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr.strip().splitlines()[-1] == (
            f"error: {out}: another job is already writing this model; wait for it or cancel it.")
    finally:
        first.kill()
        first.stdout.close()
        first.wait(timeout=60)
    assert not out.exists()
    with OutputLock(out):  # a killed job's lock dies with it: the folder can be written again
        pass
