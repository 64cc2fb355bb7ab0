"""The kernel's engine worker client on the real ``distillseg worker``: requests are jobs the widgets drive like
engine jobs, they queue behind each other in one process, Cancel ends the worker's process tree (and the next request
starts another), a worker that dies under a request is started again once and the job says so, a second death fails
the job with the engine's sentence, and a worker that exited while idle is started again without a word."""

from __future__ import annotations

import os
import signal
import time

import pytest

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from DistillSegKernelLib import jobProtocol
from DistillSegKernelLib.engine import engineEnvironment
from DistillSegKernelLib.engineWorker import EngineWorker
from tiny_models import oneshot_fixture

TIMEOUT_S = 240


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


def _segment(tiny, output) -> list[str]:
    return ["oneshot", "segment", "--model", str(tiny.model), "--input", str(tiny.case["scans"][0]), "--output",
            str(output), "--device", "cpu", "--progress", "jsonl"]


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)  # the worker leads its own process group: any process left in the tree answers
    except ProcessLookupError:
        return True
    return False


def test_requests_queue_in_one_worker_and_report_like_engine_jobs(tiny, tmp_path):
    worker = EngineWorker(engineEnvironment())
    try:
        events = []
        first = worker.submit(_segment(tiny, tmp_path / "a.nii.gz"), onEvent=events.append)
        second = worker.submit(_segment(tiny, tmp_path / "b.nii.gz"))
        dropped = worker.submit(_segment(tiny, tmp_path / "never.nii.gz"))
        dropped.cancel()  # still waiting: dropped at once, the worker is not touched
        assert dropped.state == jobProtocol.CANCELLED
        for job in (first, second):
            assert isinstance(job, jobProtocol.Job)
            assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED, job.errorMessage
        assert worker.starts == 1 and first.device == "cpu" and first.progress.fraction == 1.0
        assert first.result["outputs"] == [str(tmp_path / "a.nii.gz")] and (tmp_path / "b.nii.gz").is_file()
        assert [e["event"] for e in events][-1] == "result" and not first.warnings
        assert not (tmp_path / "never.nii.gz").exists()
        failed = worker.submit(["oneshot", "segment", "--model", str(tiny.model), "--input", "x.nii.gz", "--output",
                                str(tmp_path / "c.nii.gz"), "--progress", "jsonl"])
        assert jobProtocol.waitFor(failed, TIMEOUT_S) == jobProtocol.FAILED
        assert failed.errorMessage.startswith("x.nii.gz: ") and failed.exitCode == 2 and worker.starts == 1
    finally:
        worker.close()


def test_cancel_ends_the_worker_tree_and_the_next_request_starts_another(tiny, tmp_path):
    worker = EngineWorker(engineEnvironment(), cancelGraceSeconds=5)
    try:
        job = worker.submit(_segment(tiny, tmp_path / "a.nii.gz"))
        pid = worker.pid
        job.cancel()
        assert jobProtocol.waitFor(job, 60) == jobProtocol.CANCELLED and job.errorMessage is None
        assert _gone(pid) and worker.pid is None
        again = worker.submit(_segment(tiny, tmp_path / "b.nii.gz"))
        assert jobProtocol.waitFor(again, TIMEOUT_S) == jobProtocol.SUCCEEDED, again.errorMessage
        assert worker.starts == 2 and not again.warnings
    finally:
        worker.close()


def test_a_worker_killed_under_a_request_is_started_again_once_and_says_so(tiny, tmp_path):
    worker = EngineWorker(engineEnvironment())
    try:
        events = []
        job = worker.submit(_segment(tiny, tmp_path / "a.nii.gz"), onEvent=events.append)
        os.kill(worker.pid, signal.SIGKILL)  # what the system's out-of-memory killer does
        assert jobProtocol.waitFor(job, TIMEOUT_S) == jobProtocol.SUCCEEDED, job.errorMessage
        assert events[0]["event"] == "warning" and events[0]["message"] == job.warnings[0]  # the widgets log it
        assert worker.starts == 2 and job.restarts == 1
        assert job.warnings == ["The engine was stopped by signal 9 (out of memory, or killed by the system); the "
                                "engine worker was started again and given the request again."]
        assert any(line.startswith("Warning: The engine was stopped by signal 9") for line in job.logLines)
    finally:
        worker.close()


def test_a_worker_that_cannot_run_fails_the_request_after_one_restart(tmp_path):
    worker = EngineWorker(engineEnvironment(), python="false")  # an interpreter that exits 1 at once
    job = worker.submit(["oneshot", "segment", "--model", "m", "--input", "x.nii.gz", "--output", "y.nii.gz"])
    assert jobProtocol.waitFor(job, 60) == jobProtocol.FAILED
    assert job.errorMessage == "The engine stopped unexpectedly (exit code 1)" and worker.starts == 2
    assert len(job.warnings) == 1 and job.restarts == 1


def test_a_worker_that_exited_while_idle_is_started_again_silently(tiny, tmp_path):
    worker = EngineWorker(engineEnvironment(), idleMinutes=0.005)  # 0.3 s without a request and it exits
    try:
        first = worker.submit(_segment(tiny, tmp_path / "a.nii.gz"))
        assert jobProtocol.waitFor(first, TIMEOUT_S) == jobProtocol.SUCCEEDED, first.errorMessage
        pid = worker.pid
        deadline = time.monotonic() + 60
        while worker.pid is not None and time.monotonic() < deadline:
            worker.pump()  # notices the exit (and reaps the process)
            time.sleep(0.1)
        assert _gone(pid)
        second = worker.submit(_segment(tiny, tmp_path / "b.nii.gz"))
        assert jobProtocol.waitFor(second, TIMEOUT_S) == jobProtocol.SUCCEEDED, second.errorMessage
        assert worker.starts == 2 and not second.warnings and second.restarts == 0
    finally:
        worker.close()
