"""The jobs the widgets drive, on real child processes that speak the engine's jsonl protocol: an engine job and a
chain of them (the one behind "Learn new structures": learn, then score before and after) both are the kernel's
``jobProtocol.Job``; the chain's steps run in order, a failed step ends it with its sentence, and the widget's view
(progress, device, log, results) follows the step that runs; ``waitFor`` is the one way to wait, with a deadline
that cancels when asked to."""

from __future__ import annotations

import sys

import pytest

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from DistillSegKernelLib import jobProtocol
from DistillSegKernelLib.jobChain import JobChain
from DistillSegKernelLib.jobRunner import EngineJob

SLEEPER = [sys.executable, "-c", "import json, time; print(json.dumps({'event': 'log', 'message': 'up'}), "
                                 "flush=True); time.sleep(60)"]


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
    assert jobProtocol.waitFor(chain, 60) == jobProtocol.SUCCEEDED
    assert chain.results == [{"model": "m1"}, {"report": "after.json"}]
    assert chain.result == {"report": "after.json"}
    assert "--- scoring the new version (2 of 2)" in chain.logLines and "Running on cpu (2 threads)" in chain.logLines


def test_a_failed_step_ends_the_chain_with_its_sentence():
    chain = JobChain([
        ("learning", _step([{"event": "result", "model": "m1"}])),
        ("scoring the previous version", _step([{"event": "error", "message": "/x/check: no frames."}], 2)),
        ("scoring the new version", _step([{"event": "result"}])),
    ]).start()
    assert jobProtocol.waitFor(chain, 60) == jobProtocol.FAILED
    assert chain.errorMessage == "/x/check: no frames." and chain.stepTitle == "scoring the previous version (2 of 3)"
    assert chain.results == [{"model": "m1"}]  # the third step never started
    assert chain.poll() == [] and chain.state == jobProtocol.FAILED


def test_cancel_stops_the_running_step_and_the_chain():
    chain = JobChain([("learning", SLEEPER), ("scoring", _step([]))]).start()
    while not chain.logLines[1:]:
        jobProtocol.waitFor(chain, 0.2)
    chain.cancel()
    assert jobProtocol.waitFor(chain, 30) == jobProtocol.CANCELLED and chain.index == 0
    assert chain.results == []


def test_an_engine_job_and_a_chain_are_both_the_protocol_the_widgets_drive():
    job = EngineJob(_step([{"event": "result", "model": "m"}])).start()
    chain = JobChain([("one", _step([]))]).start()
    for each in (job, chain):
        assert isinstance(each, jobProtocol.Job)
        assert jobProtocol.waitFor(each, 60) == jobProtocol.SUCCEEDED
    assert job.stepTitle == "" and chain.stepTitle == "one (1 of 1)"
    assert job.result == {"model": "m"}


def test_waiting_past_the_deadline_returns_or_cancels_as_asked():
    job = EngineJob(SLEEPER, cancelGraceSeconds=2).start()
    assert jobProtocol.waitFor(job, 0.3) == jobProtocol.RUNNING  # a plain deadline leaves the job running
    pumped = []
    with pytest.raises(TimeoutError, match="did not finish within 1 s"):
        jobProtocol.waitFor(job, 1, pump=lambda: pumped.append(1), cancelOnTimeout=True)
    assert job.state == jobProtocol.CANCELLED and pumped
    failing = EngineJob(_step([{"event": "error", "message": "/x: broken."}], 2)).start()
    with pytest.raises(RuntimeError, match="failed: /x: broken."):
        jobProtocol.requireSuccess(failing, 60)
