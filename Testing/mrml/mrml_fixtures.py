"""A real headless Slicer scene (slicer-core: Slicer's MRML and logic libraries without Qt) for the module Libs.

The application logic with the colour, volumes and segmentations logics is created once per session; every test
gets the same scene cleared. The module folders are put on ``sys.path`` as Slicer does for scripted modules.
Test files import the fixtures from here (``from mrml_fixtures import scene``): a second ``conftest.py`` would clash
with ``Testing/conftest.py``, and this folder is not called ``slicer`` because slicer-core's meta-package imports
every module of any ``slicer`` folder on ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
for moduleFolder in sorted(p for p in REPO.iterdir() if (p / f"{p.name}.py").is_file() or (p / f"{p.name}Lib").is_dir()):
    if str(moduleFolder) not in sys.path:
        sys.path.append(str(moduleFolder))

slicer = pytest.importorskip("slicer", reason="slicer-core is not installed")


@pytest.fixture(scope="session")
def slicerApp():
    """The headless application: scene + application logic + colour/volumes/segmentations logics."""
    from headless_slicer import headlessApplication

    return headlessApplication()


@pytest.fixture
def scene(slicerApp):
    """The session's scene, emptied before each test."""
    slicerApp.scene.Clear(0)
    yield slicerApp.scene
    slicerApp.scene.Clear(0)


def oneshotParameters(case, **changes):
    """What the OneShotSeg module's parameter node holds, for ``OneShotJobControl`` (the module logic's engine side),
    on a ``sampleCase`` (a tiny training: 2 iterations per stage on the CPU unless ``changes`` say otherwise)."""
    values = dict(atlasVolume=case.atlasVolume, atlasSegmentation=case.atlasSegmentation,
                  unlabeledVolumes=case.unlabeledVolumes, unlabeledFolder="", modelName="tiny", iterations=2,
                  augmenterIterations=2, spacingMm=0.0, device="cpu", alreadyAligned=True,
                  inputVolume=case.unlabeledVolumes[0], outputSegmentation=None, selectedModel="")
    return SimpleNamespace(**{**values, **changes})
