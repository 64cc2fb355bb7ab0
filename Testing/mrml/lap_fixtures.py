"""Fixtures of the IncrementalLap glue tests (imported by ``test_lap_*.py`` like ``mrml_fixtures``).

``sequencesLogic``: Slicer's sequences logic on the session's scene. Setting its scene registers the sequence
browser node class (as the Sequences module does in Slicer) and lets browsers update their proxy nodes.
"""

from __future__ import annotations

import pytest

from mrml_fixtures import slicerApp  # noqa: F401  (pytest fixture)

import slicer


@pytest.fixture(scope="module")
def sequencesLogic(slicerApp):  # noqa: F811
    logic = slicer.vtkSlicerSequencesLogic()
    logic.SetMRMLScene(slicerApp.scene)
    logic.SetMRMLApplicationLogic(slicerApp.appLogic)
    slicerApp.appLogic.SetModuleLogic("Sequences", logic)
    yield logic
    slicerApp.appLogic.SetModuleLogic("Sequences", None)
    logic.SetMRMLScene(None)
