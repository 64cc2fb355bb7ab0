"""Where the ``distillseg`` engine is and how to start it as a child process.

The engine never runs inside Slicer's GUI process: every job is ``<python> -m distillseg …`` with Slicer's own Python
(``PythonSlicer``, else ``sys.executable``). The engine package is found, in this order:

1. beside this Lib's package folder (the installed extension puts ``distillseg/`` next to the scripted modules);
2. one folder higher (a developer checkout: ``<repo>/DistillSegKernel/DistillSegKernelLib`` and ``<repo>/distillseg``);
3. wherever ``import distillseg`` would find it (an engine pip-installed into Slicer's Python).

The child gets that folder prepended to ``PYTHONPATH``, so it imports the same engine the module was shipped with.
Inside ``with standInEngine():`` every engine command runs ``standInEngine.py`` instead (same command line and
progress protocol, no PyTorch): the self-tests use it on a factory Slicer.
In Slicer's own process only the engine's torch-free contract package (``distillseg.contract``) is imported; the
kernel module (``DistillSegKernel.py``) makes it importable once, at startup, with ``ensureEngineImportable`` —
the Libs themselves never change ``sys.path``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

ENGINE_PACKAGE = "distillseg"
STAND_IN_SCRIPT = Path(__file__).with_name("standInEngine.py")
_standInPython: str | None = None  # set while ``standInEngine`` is active: the Python that runs the stand-in


class EngineNotFoundError(RuntimeError):
    """The engine package cannot be found; the message says where it was looked for."""


def _containsEngine(folder: Path) -> bool:
    return (folder / ENGINE_PACKAGE / "__init__.py").is_file()


def engineRoot() -> Path:
    """The folder that contains the ``distillseg`` package (the one to put on the child's ``PYTHONPATH``)."""
    here = Path(__file__).resolve().parent
    candidates = [here.parent, here.parent.parent]
    for folder in candidates:
        if _containsEngine(folder):
            return folder
    spec = importlib.util.find_spec(ENGINE_PACKAGE)
    if spec is not None and spec.origin:
        return Path(spec.origin).resolve().parent.parent
    looked = ", ".join(str(c) for c in candidates)
    raise EngineNotFoundError(
        f"The OneShotSeg engine (the '{ENGINE_PACKAGE}' package) was not found in {looked} nor in Slicer's Python; "
        "reinstall the extension, or in developer mode add the module folders of a full checkout.")


def pythonExecutable() -> str:
    """Slicer's Python launcher when running inside Slicer, else the Python running this code."""
    return shutil.which("PythonSlicer") or sys.executable


def engineCommand(arguments: list[str], python: str | None = None) -> list[str]:
    """``[python, "-m", "distillseg", *arguments]`` (``[python, standInEngine.py, *arguments]`` inside
    ``standInEngine``); all arguments are passed as separate strings (no shell)."""
    if _standInPython is not None:
        return [_standInPython, str(STAND_IN_SCRIPT), *[str(a) for a in arguments]]
    return [python or pythonExecutable(), "-m", ENGINE_PACKAGE, *[str(a) for a in arguments]]


def standInActive() -> bool:
    """True inside ``standInEngine``: jobs then need none of the engine's Python packages."""
    return _standInPython is not None


@contextlib.contextmanager
def standInEngine(python: str | None = None):
    """Within the block every engine command runs the stand-in engine (``standInEngine.py``) with ``python``
    (default: Slicer's): what the self-tests use to check the module logic where PyTorch is not installed."""
    global _standInPython
    previous, _standInPython = _standInPython, python or pythonExecutable()
    try:
        yield
    finally:
        _standInPython = previous


def engineEnvironment(baseEnvironment: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ``baseEnvironment`` (default: this process's) with the engine on ``PYTHONPATH``.

    Output is unbuffered and UTF-8 so progress lines and non-ASCII file names arrive intact and on time.
    """
    environment = dict(os.environ if baseEnvironment is None else baseEnvironment)
    root = str(engineRoot())
    existing = environment.get("PYTHONPATH", "")
    parts = [root] + [p for p in existing.split(os.pathsep) if p and p != root]
    environment["PYTHONPATH"] = os.pathsep.join(parts)
    environment["PYTHONUNBUFFERED"] = "1"
    environment["PYTHONIOENCODING"] = "utf-8"
    return environment


def defaultThreads() -> int:
    """CPU threads for a job: all cores but one, so Slicer's GUI stays responsive while it trains."""
    return max(1, (os.cpu_count() or 2) - 1)


def ensureEngineImportable() -> None:
    """Make ``import distillseg.contract`` work in this process (a developer checkout is not on ``sys.path``).

    The folder is appended (never prepended) to ``sys.path`` so it cannot shadow anything Slicer already has.
    """
    if importlib.util.find_spec(ENGINE_PACKAGE) is None:
        sys.path.append(str(engineRoot()))
