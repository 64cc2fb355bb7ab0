"""What the method modules' self-tests share. Each runs two stories on a cleared scene, in a fresh work folder under
Slicer's temporary path, each within a minute on a two-core CPU:

- the module logic against the stand-in engine (``DistillSegKernelLib.standInEngine``): job start, progress, cancel
  and result import, checked on every Slicer, a factory one without PyTorch included;
- the whole story through the real engine on a tiny generated case, skipped with a sentence that says so where the
  engine's Python packages are not installed.

In ctest each is a test of its own (``test_StandInEngine``, ``test_Engine``: the second reports a skip); *Reload and
Test* runs both and shows the skip sentence."""

import os
import tempfile
import unittest

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from DistillSegKernelLib import dependencies, engine
from DistillSegKernelLib.modelStore import ModelStore


class EngineModuleTest(ScriptedLoadableModuleTest):
    """A subclass names its ``method``, says what its real story does (``storyTitle``) and implements
    ``runStandInStory`` and ``runStory``."""

    method = ""      # the models' method: the story's model store holds these
    storyTitle = ""  # shown while the real story runs

    def setUp(self):
        slicer.mrmlScene.Clear()
        self.workFolder = tempfile.mkdtemp(prefix=f"{self.__class__.__name__}-", dir=slicer.app.temporaryPath)

    def runTest(self):
        self.setUp()
        self.test_StandInEngine()
        self.setUp()
        try:
            self.test_Engine()
        except unittest.SkipTest as skipped:
            self.delayDisplay(str(skipped))

    def test_StandInEngine(self):
        self.delayDisplay("Module logic against the stand-in engine (job start, progress, cancel, result import)")
        with engine.standInEngine():
            problems = self.runStandInStory(self.workFolder)
        self.assertEqual(problems, [])
        self.delayDisplay("Stand-in engine part passed")

    def test_Engine(self):
        plan = dependencies.checkDependencies()
        if plan.needsInstall or plan.problems:
            missing = ", ".join(filter(None, [plan.torch, *plan.packages, *plan.problems]))
            self.skipTest(f"Real engine part skipped: the engine's Python packages are not installed ({missing}). "
                          "The module logic was checked against the stand-in engine.")
        self.delayDisplay(self.storyTitle)
        summary = self.runStory(self.workFolder, ModelStore(self.method, os.path.join(self.workFolder, "models")))
        self.delayDisplay(f"Real engine part passed{': ' + summary if summary else ''}")

    def runStandInStory(self, workFolder: str) -> list[str]:
        """Run the module logic's story against the stand-in engine; returns its problems (sentences)."""
        raise NotImplementedError

    def runStory(self, workFolder: str, store: ModelStore) -> str:
        """Run the story with ``store`` (a model store inside ``workFolder``), assert its outcome; returns a
        line for the report (may be empty)."""
        raise NotImplementedError
