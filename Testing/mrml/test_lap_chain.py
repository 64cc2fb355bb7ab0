"""The job chain behind "Learn new structures" (learn, then score before and after) on real child processes that
speak the engine's jsonl protocol: steps run in order, a failed step ends the chain with its sentence, and the
widget's view (progress, device, log, results) follows the step that runs."""

from __future__ import annotations

import sys

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from IncrementalLapLib.lapJobs import JobChain
from OneShotSegLib import jobRunner


def _step(events: list[dict], exitCode: int = 0) -> list[str]:
    script = "import json, sys\n" + "".join(f"print(json.dumps({e!r}), flush=True)\n" for e in events)
    return [sys.executable, "-c", script + f"sys.exit({exitCode})"]


def test_steps_run_in_order_and_report_as_one_job():
    chain = JobChain([
        ("learning", _step([{"event": "device", "device": "cpu", "description": "cpu (2 threads)",
                             "precision": "fp32"},
                            {"event": "progress", "stage": "segmenter", "step": 3, "total": 3, "eta_s": 0.0},
                            {"event": "result", "model": "m1"}])),
        ("scoring the new version", _step([{"event": "result", "report": "after.json"}])),
    ]).start()
    assert chain.stepTitle == "learning (1 of 2)"
    assert chain.wait(60) == jobRunner.SUCCEEDED
    assert chain.results == [{"model": "m1"}, {"report": "after.json"}]
    assert chain.result == {"report": "after.json"}
    assert "--- scoring the new version (2 of 2)" in chain.logLines and "Running on cpu (2 threads)" in chain.logLines


def test_a_failed_step_ends_the_chain_with_its_sentence():
    chain = JobChain([
        ("learning", _step([{"event": "result", "model": "m1"}])),
        ("scoring the previous version", _step([{"event": "error", "message": "/x/check: no frames."}], 2)),
        ("scoring the new version", _step([{"event": "result"}])),
    ]).start()
    assert chain.wait(60) == jobRunner.FAILED
    assert chain.errorMessage == "/x/check: no frames." and chain.stepTitle == "scoring the previous version (2 of 3)"
    assert chain.results == [{"model": "m1"}]  # the third step never started
    assert chain.poll() == [] and chain.state == jobRunner.FAILED


def test_cancel_stops_the_running_step_and_the_chain():
    sleeper = [sys.executable, "-c", "import json, time; print(json.dumps({'event': 'log', 'message': 'up'}), "
                                     "flush=True); time.sleep(60)"]
    chain = JobChain([("learning", sleeper), ("scoring", _step([]))]).start()
    while not chain.logLines[1:]:
        chain.wait(0.2)
    chain.cancel()
    assert chain.wait(30) == jobRunner.CANCELLED and chain.index == 0
    assert chain.results == []
