"""The dependency check reads package metadata only, finds what is missing, and the engine requirements file
agrees with the engine's pyproject.toml (torch comes from the PyTorch extension, numpy and scipy from Slicer);
loading frames checks Pillow only; a Python older than the engine's is one sentence; packages can be installed from
a folder of wheels without an index."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)
from DistillSegKernelLib import dependencies

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "DistillSegKernel" / "Resources" / "distillseg-requirements.txt"


def test_requirements_file_matches_the_engine_package():
    engine = {Requirement(r).name.lower(): str(Requirement(r).specifier)
              for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    module = {Requirement(r).name.lower(): str(Requirement(r).specifier)
              for r in dependencies.readRequirements(REQUIREMENTS)}
    provided = {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in dependencies.SLICER_PROVIDED}
    torch = Requirement(dependencies.TORCH_REQUIREMENT)
    assert {**module, **provided, torch.name: str(torch.specifier)} == engine


def test_check_finds_missing_and_unsatisfied_packages(tmp_path):
    assert dependencies.isSatisfied("numpy>=1.0")
    assert not dependencies.isSatisfied("numpy<1.0")
    assert not dependencies.isSatisfied("surely-not-an-installed-package-xyz>=1")
    assert dependencies.isSatisfied("surely-not-an-installed-package-xyz; sys_platform == 'nonexistent-os'")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\n-c constraints.txt\nnibabel>=1.0\nsurely-not-an-installed-package-xyz>=2\n")
    plan = dependencies.checkDependencies(requirements, torchRequirement="torch>=99")
    assert plan.torch == "torch>=99" and plan.packages == ["surely-not-an-installed-package-xyz>=2"]
    assert plan.needsInstall and plan.problems == []
    text = plan.confirmationText()
    assert "torch>=99 (through the PyTorch extension" in text and "surely-not-an-installed-package-xyz>=2" in text


def test_this_environment_has_everything_and_checking_imports_nothing():
    before = set(sys.modules)
    plan = dependencies.checkDependencies(REQUIREMENTS)
    assert not plan.needsInstall and plan.problems == []
    assert not {"monai", "skimage", "safetensors"} & (set(sys.modules) - before)


def test_constraints_pin_slicer_packages(tmp_path):
    path = dependencies.writeConstraints(tmp_path)
    pins = path.read_text().split()
    assert f"numpy=={dependencies.installedVersion('numpy')}" in pins
    assert f"torch=={dependencies.installedVersion('torch')}" in pins


def test_declining_the_one_dialog_installs_nothing(tmp_path):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("surely-not-an-installed-package-xyz>=2\nnibabel>=1.0\n")
    asked = []
    ready = dependencies.ensureDependencies("OneShotSeg", confirm=lambda text, title: asked.append((text, title)) or False,
                                            requirementsFile=requirements)
    assert ready is False and len(asked) == 1  # one dialog, declined
    text, title = asked[0]
    assert "surely-not-an-installed-package-xyz>=2" in text and "nibabel" not in text and "OneShotSeg" in title
    assert dependencies.ensureDependencies("OneShotSeg", confirm=lambda *a: 1 / 0,
                                           requirementsFile=REQUIREMENTS) is True  # nothing missing: no dialog


def test_loading_frames_checks_pillow_only(tmp_path):
    """Load frames / Load folder read frames with Pillow (Slicer ships it): a missing PyTorch must not be asked for."""
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("surely-not-an-installed-package-xyz>=2\nPillow>=10.0\n")
    plan = dependencies.checkDependencies(requirements, torchRequirement="torch>=99", only=dependencies.FRAME_READER)
    assert plan.torch is None and plan.packages == [] and not plan.problems
    assert dependencies.ensureDependencies("IncrementalLap", confirm=lambda *a: 1 / 0, requirementsFile=requirements,
                                           only=dependencies.FRAME_READER) is True
    requirements.write_text("Pillow>=999\n")
    assert dependencies.checkDependencies(requirements, only=("pillow",)).packages == ["Pillow>=999"]


def test_the_module_loads_frames_with_the_frame_reader_check():
    """Every dependency check the IncrementalLap widget makes outside its jobs is the frame reader's."""
    tree = ast.parse((REPO / "IncrementalLap" / "IncrementalLap.py").read_text(encoding="utf-8"))
    loads = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name.startswith("onLoad")]
    assert {f.name for f in loads} == {"onLoadFrames", "onLoadFolder"}
    checks = [c for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for c in ast.walk(f)
              if isinstance(c, ast.Call) and ast.unparse(c.func).endswith("ensureDependencies")]
    assert checks and all(ast.unparse(k.value) == "dependencies.FRAME_READER" for c in checks for k in c.keywords
                          if k.arg == "only")
    assert all(any(k.arg == "only" for k in c.keywords) for c in checks)
    for load in loads:
        assert "self.ensureFrameReader()" in ast.unparse(load)


def test_a_python_older_than_the_engines_is_named_in_one_sentence():
    """Slicer 5.8 runs Python 3.9; the engine needs 3.10 (``zip(strict=True)``...): refused before anything runs."""
    engine = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert engine == ">=" + ".".join(map(str, dependencies.MINIMUM_PYTHON))
    plan = dependencies.checkDependencies(pythonVersion=(3, 9, 10))
    assert plan.problems == ["This Slicer runs Python 3.9.10, but OneShotSeg needs Python 3.10 or later: use "
                             "Slicer 5.10 or later."]
    assert dependencies.checkDependencies(pythonVersion=(3, 10, 0)).problems == []


def _tinyWheel(folder: Path) -> Path:
    """A one-module wheel, ``tinyoffline`` 1.0, as ``pip download`` would leave in the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tinyoffline-1.0-py3-none-any.whl"
    files = {"tinyoffline.py": "VALUE = 1\n",
             "tinyoffline-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinyoffline\nVersion: 1.0\n",
             "tinyoffline-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               "Tag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("tinyoffline-1.0.dist-info/RECORD", "".join(f"{n},,\n" for n in files) +
                         "tinyoffline-1.0.dist-info/RECORD,,\n")
    return path


def test_install_from_a_folder_of_wheels_needs_no_index(tmp_path, monkeypatch):
    """The arguments the install gets resolve with pip from the folder alone (``--dry-run``: nothing installed);
    offline, torch comes from the folder too (not through the PyTorch extension, which downloads)."""
    import slicer.util

    _tinyWheel(tmp_path / "wheels")
    resolved = []

    def pipInstall(arguments):
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-cache-dir", *arguments],
                             capture_output=True, text=True, timeout=300)
        resolved.append((arguments, run.returncode, run.stdout + run.stderr))

    monkeypatch.setattr(slicer.util, "pip_install", pipInstall)
    plan = dependencies.DependencyPlan(packages=["tinyoffline==1.0"])
    dependencies.installDependencies(plan, wheelFolder=tmp_path / "wheels")
    arguments, returnCode, output = resolved[0]
    assert arguments[-4:] == ["--no-index", "--find-links", str(tmp_path / "wheels"), "tinyoffline==1.0"]
    assert returnCode == 0 and "Would install tinyoffline-1.0" in output, output
    dependencies.installDependencies(dependencies.DependencyPlan(torch="torch>=99", packages=["tinyoffline"]),
                                     wheelFolder=tmp_path / "wheels")
    arguments, returnCode, output = resolved[1]
    assert arguments[-2:] == ["torch>=99", "tinyoffline"] and returnCode != 0  # torch is not in the folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError, match="empty: this folder holds no wheel files"):
        dependencies.installDependencies(plan, wheelFolder=tmp_path / "empty")


def test_the_one_dialog_can_answer_with_a_folder(tmp_path, monkeypatch):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("surely-not-an-installed-package-xyz>=2\n")
    installs = []
    monkeypatch.setattr(dependencies, "installDependencies",
                        lambda plan, requester, wheelFolder=None: installs.append((plan.packages, wheelFolder)))
    assert dependencies.ensureDependencies("OneShotSeg", confirm=lambda *a: str(tmp_path),
                                           requirementsFile=requirements)
    assert dependencies.ensureDependencies("OneShotSeg", confirm=lambda *a: True, requirementsFile=requirements)
    assert installs == [(["surely-not-an-installed-package-xyz>=2"], str(tmp_path)),
                        (["surely-not-an-installed-package-xyz>=2"], None)]
