"""What a person sees of each verb when its output goes to a log file or a pipe, not a terminal: plain progress
lines (no bar's carriage returns, no JSON), then a short summary of what was written where; the result as JSON
only with ``--json`` (or ``--progress jsonl``); ``model info`` as a summary, ``--json`` for the whole manifest.

Every verb runs for real, as ``python -m distillseg … > log 2>&1`` (stdout and stderr into one file), on the
session's tiny inputs and models (``tiny_models``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from tiny_models import LAP_TINY, ONESHOT_TINY, checked, distillseg, lap_fixture, oneshot_fixture

PLAIN_PROGRESS = re.compile(r"^[a-z][a-z ]*: \d+/\d+ \(\d+%\), .*elapsed", re.MULTILINE)


def _logged(tmp_path, *args) -> str:
    """Run ``distillseg ARGS`` with stdout and stderr redirected into one file (no terminal); its text."""
    log = tmp_path / "log.txt"
    with open(log, "w", encoding="utf-8") as handle:
        result = subprocess.run([sys.executable, "-m", "distillseg", *map(str, args)], stdout=handle,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                                timeout=600)
    text = log.read_text(encoding="utf-8")
    assert result.returncode == 0, text[-3000:]
    return text


def _verbs(tmp_path_factory, tmp_path) -> dict[str, list]:
    one, lap = oneshot_fixture(tmp_path_factory), lap_fixture(tmp_path_factory)
    case = one.case
    return {
        "oneshot train": ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"],
                          "--unlabeled", *case["scans"], "--out", tmp_path / "model", *ONESHOT_TINY],
        "oneshot segment": ["oneshot", "segment", "--model", one.model, "--input", *case["scans"], "--output",
                            tmp_path / "labels.nii.gz", "--device", "cpu"],
        "oneshot evaluate": ["oneshot", "evaluate", "--model", one.model, "--images", *case["scans"], "--labels",
                             *case["scan_labels"], "--report", tmp_path / "report.json", "--device", "cpu"],
        "lap train": ["lap", "train", "--data", lap.demo, "--classes", "stomach", "--out", tmp_path / "lap",
                      *LAP_TINY],
        "lap learn": ["lap", "learn", "--model", lap.model, "--data", lap.demo, "--new-classes", "small_intestine",
                      "--out",
                      tmp_path / "lap1", *LAP_TINY[3:]],  # the model's own working size
        "lap segment": ["lap", "segment", "--model", lap.model, "--input",
                        next((lap.demo / "multilabel" / "01").glob("image*.png")), "--output", tmp_path / "masks",
                        "--device", "cpu"],
        "lap evaluate": ["lap", "evaluate", "--model", lap.model, "--data", lap.demo, "--report",
                         tmp_path / "lap.json", "--device", "cpu"],
        "lap sample": ["lap", "sample", "--model", tmp_path / "with replay", "--out", tmp_path / "samples", "--count", 1,
                       "--device", "cpu"],
        "lap demo-data": ["lap", "demo-data", "--out", tmp_path / "frames", "--patients", 1, "--frames-per-patient",
                          1, "--size", 64, 64],
    }


VERBS = ["oneshot train", "oneshot segment", "oneshot evaluate", "lap train", "lap learn", "lap segment",
         "lap evaluate", "lap sample", "lap demo-data"]


@pytest.mark.parametrize("verb", VERBS)
def test_progress_and_summary_reach_a_log_file(verb, tmp_path_factory, tmp_path):
    if verb == "lap sample":  # the shared model has no replay model to sample from: one with a tiny one
        tiny = [word if word != "0" or before != "--diffusion-iterations" else "1"
                for before, word in zip(["", *LAP_TINY], LAP_TINY)]
        checked(distillseg("lap", "train", "--data", lap_fixture(tmp_path_factory).demo, "--classes", "stomach",
                           "--out", tmp_path / "with replay", *tiny, "--progress", "none"))
    text = _logged(tmp_path, *_verbs(tmp_path_factory, tmp_path)[verb])
    assert PLAIN_PROGRESS.search(text), text
    assert "\r" not in text and '{"event"' not in text and not re.search(r"^\s*[{}]", text, re.MULTILINE), text
    summary = text[text.index("Done.\n"):]
    assert str(tmp_path) in summary and len(summary.splitlines()) <= 12, summary
    assert "Warning" not in text, text  # no dependency's FutureWarning/UserWarning on the user's screen
    assert not [p.name for p in tmp_path.rglob("*") if p.name.endswith((".lock", ".tmp"))]  # no debris


def test_json_prints_the_result_as_one_object(tmp_path_factory, tmp_path):
    one = oneshot_fixture(tmp_path_factory)
    out = tmp_path / "labels.nii.gz"
    result = subprocess.run([sys.executable, "-m", "distillseg", "oneshot", "segment", "--model", str(one.model),
                             "--input", str(one.case["scans"][0]), "--output", str(out), "--device", "cpu", "--json"],
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["outputs"] == [str(out)]
    assert "Done." not in result.stdout


def test_model_info_summarises_and_json_gives_the_manifest(tmp_path_factory, tmp_path):
    lap = lap_fixture(tmp_path_factory)
    summary = _logged(tmp_path, "model", "info", lap.model)
    for expected in ("Method: IncrementalLap", "Structures: stomach, colon", "Version: step 0",
                     "learned stomach, colon from 4 frames of 2 patient(s)", "Note: trained on SYNTHETIC", "Size: "):
        assert expected in summary, summary
    manifest = json.loads(_logged(tmp_path, "model", "info", lap.model, "--json"))
    assert manifest["method"] == "lap" and manifest["history"]
