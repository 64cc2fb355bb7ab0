"""The device lists of the modules and effects: auto, cpu and cuda always, mps only once the engine's check (a child
process, ``python -m distillseg.common.device``) has listed it; the check runs only where MPS can exist. The
engine's side of the check is ``Testing/engine/test_common_device.py``."""

from __future__ import annotations

import json
import sys

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from DistillSegKernelLib import devices, jobProtocol
from DistillSegKernelLib.engine import engineEnvironment
from DistillSegKernelLib.jobRunner import EngineJob


def _check(devicesListed: list[str]) -> EngineJob:
    """A finished check that listed ``devicesListed`` (what the engine prints, from a stand-in process)."""
    line = json.dumps({"event": "result", "devices": devicesListed, "mps_problem": None})
    job = EngineJob([sys.executable, "-c", f"print({line!r})"]).start()
    assert jobProtocol.waitFor(job, 60) == jobProtocol.SUCCEEDED
    return job


def test_mps_is_offered_only_once_the_check_lists_it():
    assert devices.offeredDevices(_check(["auto", "cpu", "mps"])) == ["auto", "cpu", "cuda", "mps"]
    assert devices.offeredDevices(_check(["auto", "cpu"])) == ["auto", "cpu", "cuda"]
    running = EngineJob([sys.executable, "-c", "import time; time.sleep(30)"]).start()
    try:
        assert devices.offeredDevices(running) == ["auto", "cpu", "cuda"] and devices.checking(running)
    finally:
        running.cancel()
        jobProtocol.waitFor(running, 20)


def test_the_check_runs_only_where_mps_can_exist():
    assert devices.mpsCanExist("darwin", "arm64")
    assert not devices.mpsCanExist("darwin", "x86_64") and not devices.mpsCanExist("linux", "arm64")
    if not devices.mpsCanExist():
        assert devices.startDeviceCheck() is None and devices.offeredDevices() == ["auto", "cpu", "cuda"]


def test_the_engines_answer_on_this_machine():
    """The check's real command, as it would run on a Mac (here: no MPS, so none is offered)."""
    job = EngineJob(devices.deviceCheckCommand(sys.executable), engineEnvironment()).start()
    assert jobProtocol.waitFor(job, 300) == jobProtocol.SUCCEEDED, job.errorMessage
    assert devices.offeredDevices(job) == ["auto", "cpu", "cuda"] + (["mps"] if "mps" in job.result["devices"]
                                                                    else [])
