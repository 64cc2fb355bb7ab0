"""The devices a module offers in its device lists: auto, cpu and cuda everywhere, and Apple's MPS only where the
engine's check passes (the operations the models run give the CPU's results there; ``distillseg.common.device``).

The check needs PyTorch, so it runs as a child process of the engine (``python -m distillseg.common.device``), once
per Slicer session and only where MPS can exist (macOS on Apple Silicon with PyTorch installed); until it has
answered, MPS is not offered. Everything here returns at once: ``offeredDevices`` polls the check.
"""

from __future__ import annotations

import platform
import sys

from . import dependencies
from .engine import ENGINE_PACKAGE, engineEnvironment, pythonExecutable
from .jobProtocol import SUCCEEDED
from .jobRunner import EngineJob

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")  # what a module's device parameter can hold
ALWAYS_OFFERED = ("auto", "cpu", "cuda")  # cuda is refused by the engine, in a sentence, where there is none
_check: EngineJob | None = None  # the session's check, once started


def mpsCanExist(platformName: str = sys.platform, machine: str = platform.machine()) -> bool:
    """True on macOS on Apple Silicon, the only place MPS exists."""
    return platformName == "darwin" and machine == "arm64"


def deviceCheckCommand(python: str | None = None) -> list[str]:
    """The engine's device check: prints one ``result`` event whose ``devices`` are those this machine can use."""
    return [python or pythonExecutable(), "-m", f"{ENGINE_PACKAGE}.common.device"]


def startDeviceCheck(environment: dict | None = None) -> EngineJob | None:
    """Start the session's device check where MPS can exist and PyTorch is installed (once); returns it, or None."""
    global _check
    if _check is None and mpsCanExist() and dependencies.isSatisfied(dependencies.TORCH_REQUIREMENT):
        _check = EngineJob(deviceCheckCommand(), engineEnvironment(environment)).start()
    return _check


def offeredDevices(check: EngineJob | None = None) -> list[str]:
    """What a device list shows now: ``ALWAYS_OFFERED``, and mps once ``check`` (default: the session's) has
    listed it. Polls the check; never waits for it."""
    check = check if check is not None else _check
    if check is not None:
        check.poll()
    usable = (check.result or {}).get("devices", []) if check is not None and check.state == SUCCEEDED else []
    return [device for device in DEVICE_CHOICES if device in ALWAYS_OFFERED or device in usable]


def checking(check: EngineJob | None = None) -> bool:
    """True while the check (default: the session's) has not answered yet."""
    check = check if check is not None else _check
    return check is not None and check.running
