"""What the engine needs in Slicer's Python, what is missing, and installing it after one confirmation.

Three kinds of requirement:

- ``torch``: only through the PyTorch extension (``PyTorchUtils``), which picks the build for the user's GPU;
- packages Slicer itself ships (numpy, scipy, pydicom): never installed or replaced here; if too old, the user is told;
- everything else (MONAI, nibabel, …): listed in ``DistillSegKernel/Resources/distillseg-requirements.txt`` (one
  file for every module of the extension, since they all run the same engine) and installed with pip, under a
  constraints file that pins Slicer's own numpy, scipy, SimpleITK and requests (and the installed torch),
  so installing them can never replace what Slicer runs on.

Checks read package metadata only (``importlib.metadata``): nothing is imported, so checking is instant and safe
before torch exists. A Python older than the engine's (``MINIMUM_PYTHON``, Slicer before 5.10) is a problem named in
one sentence, not a crash later. Loading frames needs Pillow only (``FRAME_READER``; Slicer ships it): asking for
PyTorch there would be wrong. Without internet, everything (torch included) can come from a folder of wheels
downloaded elsewhere (``pip download``, see the README): pip then runs with ``--no-index --find-links <folder>``.
The confirmation dialog itself belongs to the widget; this module gives it the text.
"""

from __future__ import annotations

import importlib.metadata
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import engine

# Resources of all scripted modules are installed into one shared Resources/ folder next to this package's folder;
# in a developer checkout they sit in DistillSegKernel/Resources. Both are "one folder up, then Resources".
ENGINE_REQUIREMENTS_FILE = Path(__file__).resolve().parents[1] / "Resources" / "distillseg-requirements.txt"
TORCH_REQUIREMENT = "torch>=2.3"
# pydicom: the engine reads DICOM series with Slicer's own (2.4 in Slicer <= 5.10); pinned, so no install replaces it.
SLICER_PROVIDED = ("numpy>=1.24", "scipy>=1.10", "pydicom>=2.4")
PINNED_WHEN_INSTALLING = ("numpy", "scipy", "pydicom", "SimpleITK", "requests", "torch")
MINIMUM_PYTHON = (3, 10)  # the engine's requires-python (pyproject.toml): Slicer 5.10 and later
FRAME_READER = ("Pillow",)  # what loading frames needs: checked alone by Load frames / Load folder


def readRequirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements.txt (comments, blank lines and pip options skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines
            if line.split("#", 1)[0].strip() and not line.strip().startswith("-")]


def _nameAndSpecifier(requirement: str):
    """(distribution name, specifier or None) — with ``packaging`` when present (Slicer ships it)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # fall back to "name only": any installed version is accepted
        name = requirement.split(";")[0]
        for separator in "<>=!~[ ":
            name = name.split(separator)[0]
        return name.strip(), None
    parsed = Requirement(requirement)
    if parsed.marker is not None and not parsed.marker.evaluate():
        return None, None
    return parsed.name, parsed.specifier


def installedVersion(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def isSatisfied(requirement: str) -> bool:
    """True if the requirement is installed in a matching version (no import, metadata only)."""
    name, specifier = _nameAndSpecifier(requirement)
    if name is None:  # environment marker says: not needed on this platform
        return True
    version = installedVersion(name)
    if version is None:
        return False
    return specifier is None or specifier.contains(version, prereleases=True)


@dataclass
class DependencyPlan:
    """What must happen before the engine can run: torch to install, pip packages to install, blockers."""

    torch: str | None = None
    packages: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def needsInstall(self) -> bool:
        return bool(self.torch or self.packages)

    def confirmationText(self) -> str:
        """The one confirmation dialog's list: every package that will be downloaded and installed."""
        lines = []
        if self.torch:
            lines.append(f"- {self.torch} (through the PyTorch extension, matched to your GPU)")
        lines.extend(f"- {package}" for package in self.packages)
        return "\n".join(lines)


def checkDependencies(requirementsFile: str | Path = ENGINE_REQUIREMENTS_FILE,
                      torchRequirement: str = TORCH_REQUIREMENT, only: tuple[str, ...] | None = None,
                      pythonVersion: tuple[int, ...] | None = None) -> DependencyPlan:
    """The plan for this Python (``pythonVersion``, default the running one): missing torch and packages from
    ``requirementsFile``, and what cannot be installed (a Python older than ``MINIMUM_PYTHON``, Slicer packages
    too old): problems to report. ``only``: the distribution names to check (e.g. ``FRAME_READER``), nothing else."""
    plan = DependencyPlan()
    version = tuple(pythonVersion or sys.version_info[:3])
    if version < MINIMUM_PYTHON:
        plan.problems.append(
            f"This Slicer runs Python {'.'.join(map(str, version))}, but OneShotSeg needs Python "
            f"{'.'.join(map(str, MINIMUM_PYTHON))} or later: use Slicer 5.10 or later.")
        return plan
    if only is not None:
        wanted = {name.lower() for name in only}
        plan.packages = [r for r in readRequirements(requirementsFile)
                         if (_nameAndSpecifier(r)[0] or "").lower() in wanted and not isSatisfied(r)]
        return plan
    if not isSatisfied(torchRequirement):
        plan.torch = torchRequirement
    plan.packages = [r for r in readRequirements(requirementsFile) if not isSatisfied(r)]
    for requirement in SLICER_PROVIDED:
        if not isSatisfied(requirement):
            name, _ = _nameAndSpecifier(requirement)
            plan.problems.append(
                f"Slicer's {name} {installedVersion(name) or '(missing)'} does not satisfy '{requirement}'; "
                "use Slicer 5.10 or later.")
    return plan


def writeConstraints(folder: str | Path | None = None) -> Path:
    """A pip constraints file pinning the installed versions of Slicer's own packages and torch."""
    pins = [f"{name}=={installedVersion(name)}" for name in PINNED_WHEN_INSTALLING if installedVersion(name)]
    handle = tempfile.NamedTemporaryFile("w", suffix="-constraints.txt", dir=folder, delete=False, encoding="utf-8")
    with handle:
        handle.write("\n".join(pins) + "\n")
    return Path(handle.name)


def offlineArguments(wheelFolder: str | Path | None) -> list[str]:
    """pip's options to install from a folder of wheels only (no index, no internet); none without a folder."""
    if wheelFolder is None:
        return []
    folder = Path(wheelFolder)
    if not folder.is_dir() or not any(folder.glob("*.whl")):
        raise RuntimeError(f"{folder}: this folder holds no wheel files (*.whl); download them with "
                           "'pip download' as the README describes.")
    return ["--no-index", "--find-links", str(folder)]


def installDependencies(plan: DependencyPlan, requester: str = "OneShotSeg",
                        wheelFolder: str | Path | None = None) -> None:
    """Carry out a plan the user has confirmed: torch through PyTorchUtils, then the packages with pip; with a
    ``wheelFolder``, torch and the packages from that folder only (no internet).

    Uses ``slicer.packaging`` (Slicer 5.12+) when present, else ``slicer.util.pip_install`` (5.10).
    Raises ``RuntimeError`` with a sentence for the user if something cannot be done.
    """
    import slicer

    if plan.problems:
        raise RuntimeError(" ".join(plan.problems))
    offline = offlineArguments(wheelFolder)
    packages = ([plan.torch] if plan.torch and offline else []) + plan.packages
    if plan.torch and not offline:
        try:
            import PyTorchUtils
        except ImportError:
            raise RuntimeError("The PyTorch extension is not installed: install 'PyTorch' from the Extensions "
                               "Manager, restart Slicer, and try again.") from None
        specifier = plan.torch[len("torch"):]
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=specifier) is None:
            raise RuntimeError("PyTorch was not installed; see the PyTorch Utils module for details.")
    if not packages:
        return
    constraints = writeConstraints()
    try:
        try:
            import slicer.packaging as packaging  # Slicer 5.12+
        except ImportError:
            packaging = None
        if packaging is not None:
            packaging.pip_install([*offline, *packages], constraints=str(constraints), requester=requester)
        else:
            slicer.util.pip_install(["-c", str(constraints), *offline, *packages])
    finally:
        constraints.unlink(missing_ok=True)


def ensureDependencies(requester: str = "OneShotSeg", confirm=None,
                       requirementsFile: str | Path = ENGINE_REQUIREMENTS_FILE,
                       only: tuple[str, ...] | None = None) -> bool:
    """Check (``only`` those packages, if given), and if something is missing ask once (listing every package)
    and install; True when ready.

    ``confirm(text, windowTitle)`` shows the question and returns True to install from the internet, a folder
    path to install from that folder of wheels, or False (default: ``slicer.util.confirmOkCancelDisplay``).
    False means the user declined; nothing was installed.
    """
    if engine.standInActive():  # the stand-in engine of the self-tests runs without them
        return True
    plan = checkDependencies(requirementsFile, only=only)
    if plan.problems:
        raise RuntimeError(" ".join(plan.problems))
    if not plan.needsInstall:
        return True
    if confirm is None:
        import slicer

        confirm = slicer.util.confirmOkCancelDisplay
    text = (f"{requester} runs its engine with these Python packages, which are not installed in Slicer yet. "
            "They will be installed now, from the internet or from a folder of wheels downloaded beforehand (this "
            "can take several minutes; PyTorch alone is about 1-3 GB):\n\n" + plan.confirmationText() + "\n\nInstall them?")
    answer = confirm(text, f"{requester} - install Python packages")
    if not answer:
        return False
    installDependencies(plan, requester, wheelFolder=answer if isinstance(answer, (str, Path)) else None)
    return True
