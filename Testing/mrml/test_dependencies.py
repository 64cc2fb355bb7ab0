"""The dependency check reads package metadata only, finds what is missing, and the engine requirements file
agrees with the engine's pyproject.toml (torch comes from the PyTorch extension, numpy and scipy from Slicer)."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

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
