"""The device check that decides whether Apple's MPS is used: the operations the models run (16->16 3D convolution,
stride-2 3D transposed convolution, 3D grid_sample forward and backward, fp32) are compared with the CPU's results;
a device that fails makes ``auto`` fall back to the CPU, saying why in the device description; the device list Slicer
offers comes from ``python -m distillseg.common.device``. MPS itself is absent here: its failures are simulated."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from distillseg.common import device as devices
from distillseg.contract.errors import UserError


@pytest.fixture(autouse=True)
def fresh_check():
    devices.mps_problem.cache_clear()
    yield
    devices.mps_problem.cache_clear()


def test_every_probe_matches_on_the_cpu_itself():
    assert [name for name, _, _ in devices._probes()] == [
        "16->16 3D convolution", "stride-2 3D transposed convolution", "3D grid_sample", "3D grid_sample backward"]
    assert devices.check_against_cpu(torch.device("cpu")) is None


def test_a_device_that_computes_grid_sample_differently_is_named(monkeypatch):
    """The second call of each pair is the device's: perturb it, as a faulty MPS kernel would."""
    real = torch.nn.functional.grid_sample
    calls = []

    def faulty(*args, **kwargs):
        calls.append(1)
        out = real(*args, **kwargs)
        return out + 0.01 if len(calls) % 2 == 0 else out

    monkeypatch.setattr(torch.nn.functional, "grid_sample", faulty)
    assert devices.check_against_cpu(torch.device("cpu")) == (
        "cpu computes the 3D grid_sample the models use differently from the CPU")


def test_a_device_that_cannot_run_an_operation_is_named(monkeypatch):
    real = torch.nn.functional.conv_transpose3d
    calls = []

    def missing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise NotImplementedError("not implemented for this device")
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "conv_transpose3d", missing)
    assert devices.check_against_cpu(torch.device("cpu")) == (
        "cpu cannot run the stride-2 3D transposed convolution the models use (NotImplementedError)")


def _mps(monkeypatch, problem):
    """A machine whose MPS is present and whose check gives ``problem`` (None: passes)."""
    monkeypatch.setattr(devices, "_mps_present", lambda: True)
    monkeypatch.setattr(devices, "check_against_cpu", lambda device: problem)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_falls_back_to_the_cpu_with_one_sentence(monkeypatch):
    _mps(monkeypatch, "mps computes the 3D grid_sample the models use differently from the CPU")
    chosen = devices.resolve_device("auto")
    assert chosen.type == "cpu"
    assert devices.describe_device(chosen).endswith(
        "threads; mps computes the 3D grid_sample the models use differently from the CPU, so the CPU is used)")
    assert devices.usable_devices() == ["auto", "cpu"]
    with pytest.raises(UserError, match="Device 'mps' was requested, but mps computes the 3D grid_sample"):
        devices.resolve_device("mps")


def test_a_passing_mps_is_chosen_and_offered(monkeypatch):
    _mps(monkeypatch, None)
    assert devices.resolve_device("auto") == torch.device("mps")
    assert devices.usable_devices() == ["auto", "cpu", "mps"]


def test_the_device_list_slicer_reads():
    run = subprocess.run([sys.executable, "-m", "distillseg.common.device"], capture_output=True, text=True,
                         timeout=300)
    event = json.loads(run.stdout)
    assert run.returncode == 0 and event["event"] == "result"
    assert event["devices"][:2] == ["auto", "cpu"] and ("mps" in event["devices"]) == (event["mps_problem"] is None)
