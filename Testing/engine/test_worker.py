"""``distillseg worker`` through its real stdin/stdout: each request answers as the command would (same events, same
files, same exit code), a model is loaded once per bundle (known by its manifest's SHA-256, so a new training under
the same name is loaded again), refused requests get one sentence and the worker goes on, and it exits when its
input closes or it has been idle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from distillseg.common.volume_io import read_labels
from distillseg.contract.worker import request_line
from tiny_models import checked, distillseg, lap_fixture, oneshot_fixture


def _serve(lines: list[str], *options: str, timeout: float = 300) -> tuple[list[dict], subprocess.CompletedProcess]:
    """Run a worker over ``lines`` (its whole stdin); its stdout as events, and the finished process."""
    done = subprocess.run([sys.executable, "-m", "distillseg", "worker", *options], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                          timeout=timeout)
    return [json.loads(line) for line in done.stdout.splitlines()], done


def _answers(events: list[dict]) -> list[list[dict]]:
    """The events split per request, each list ending with its ``done`` line."""
    answers, current = [], []
    for event in events:
        current.append(event)
        if event["event"] == "done":
            answers.append(current)
            current = []
    assert not current, "events after the last done line"
    return answers


def _segment(model, scan, output) -> list[str]:
    return ["oneshot", "segment", "--model", str(model), "--input", str(scan), "--output", str(output),
            "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


def test_requests_answer_as_the_command_and_reuse_the_model(tiny, tmp_path):
    scan = tiny.case["scans"][0]
    checked(distillseg(*_segment(tiny.model, scan, tmp_path / "cold.nii.gz"), "--progress", "jsonl"))
    copy, retrained = tmp_path / "copied model", tmp_path / "retrained model"
    shutil.copytree(tiny.model, copy)
    shutil.copytree(tiny.model, retrained)
    manifest = json.loads((retrained / "manifest.json").read_text(encoding="utf-8"))
    manifest["created"] = "another training"  # a new bundle (a new training under the same name) has another manifest
    (retrained / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    lines = [request_line("a", _segment(tiny.model, scan, tmp_path / "warm1.nii.gz")),
             "this is not json",
             request_line("b", ["oneshot", "train", "--atlas", str(scan)]),
             request_line("c", ["oneshot", "segment", "--model", str(tiny.model)]),
             request_line("d", _segment(tiny.model, scan, tmp_path / "warm2.nii.gz")),
             request_line("e", _segment(tmp_path / "missing model", scan, tmp_path / "never.nii.gz")),
             request_line("f", _segment(copy, scan, tmp_path / "warm3.nii.gz")),
             request_line("g", _segment(retrained, scan, tmp_path / "warm4.nii.gz"))]
    events, done = _serve(lines)
    assert done.returncode == 0, done.stderr  # its input closed: it exits
    answers = _answers(events)
    assert [a[-1] for a in answers] == [{"event": "done", "id": i, "exit_code": c}
                                        for i, c in zip(["a", "", "b", "c", "d", "e", "f", "g"],
                                                        (0, 2, 2, 2, 0, 2, 0, 0))]
    first, not_json, other_verb, bad_options, second, missing, copied, new = answers
    kinds = [e["event"] for e in first]
    assert kinds[-2:] == ["result", "done"] and "device" in kinds and "progress" in kinds
    # Models are known by their manifest's SHA-256: the copy is the same bundle, the retrained one is another.
    for answer, word in ((first, "loaded in"), (second, "reused"), (copied, "reused"), (new, "loaded in")):
        assert any(word in e.get("message", "") for e in answer), answer
    assert not_json[0] == {"event": "error", "message": "A worker request must be one JSON object per line."}
    assert "run 'distillseg oneshot train' as a command of its own" in other_verb[0]["message"]
    assert bad_options[0]["message"] == "One of the arguments --input --bids is required."  # as the command
    assert "missing model" in missing[0]["message"] and not (tmp_path / "never.nii.gz").exists()
    cold = read_labels(tmp_path / "cold.nii.gz")
    for name in ("warm1", "warm2", "warm3", "warm4"):
        warm = read_labels(tmp_path / f"{name}.nii.gz")
        np.testing.assert_array_equal(warm.array, cold.array)
        np.testing.assert_array_equal(warm.affine, cold.affine)
    assert first[-2]["outputs"] == [str(tmp_path / "warm1.nii.gz")]


def test_lap_frames_in_the_worker_match_the_command(tmp_path_factory, tmp_path):
    lap = lap_fixture(tmp_path_factory)
    frames = tmp_path / "frames"
    frames.mkdir()
    for image in (lap.demo / "multilabel" / "01").glob("image*.png"):
        shutil.copy(image, frames)
    common = ["lap", "segment", "--model", str(lap.model), "--input", str(frames), "--device", "cpu"]
    checked(distillseg(*common, "--output", tmp_path / "cold", "--progress", "none"))
    events, done = _serve([request_line(str(n), [*common, "--output", str(tmp_path / f"warm{n}")]) for n in (1, 2)])
    assert [e["exit_code"] for e in events if e["event"] == "done"] == [0, 0], done.stderr
    cold = sorted((tmp_path / "cold").iterdir())
    assert cold
    for n in (1, 2):
        warm = sorted((tmp_path / f"warm{n}").iterdir())
        assert [p.name for p in warm] == [p.name for p in cold]
        assert all(w.read_bytes() == c.read_bytes() for w, c in zip(warm, cold))


def test_an_idle_worker_exits_by_itself():
    process = subprocess.Popen([sys.executable, "-m", "distillseg", "worker", "--idle-minutes", "0.01"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    try:
        assert process.wait(timeout=120) == 0  # its stdin stays open: only the idle time-out ends it
    finally:
        process.kill()
        process.stdin.close()
    assert json.loads(process.stdout.read().splitlines()[-1]) == {"event": "log",
                                                "message": "no request for 0.01 min: the worker exits"}


def test_a_bad_idle_time_is_refused_in_one_sentence():
    events, done = _serve([], "--idle-minutes", "0")
    assert done.returncode == 2
    assert events == [{"event": "error", "message": "--idle-minutes must be more than 0, not 0."}]
