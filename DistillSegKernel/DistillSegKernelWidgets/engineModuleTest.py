"""What the method modules' self-tests share: each runs its whole story through the engine on a cleared scene, in a
fresh work folder under Slicer's temporary path, and is skipped, naming the missing packages, where the engine's
Python packages are not installed (a factory Slicer without torch)."""

import os
import tempfile

import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest

from DistillSegKernelLib import dependencies
from DistillSegKernelLib.modelStore import ModelStore


class EngineModuleTest(ScriptedLoadableModuleTest):
    """A subclass names its ``method``, says what it does (``storyTitle``) and implements ``runStory``."""

    method = ""      # the models' method: the story's model store holds these
    storyTitle = ""  # shown while the story runs

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_Story()

    def test_Story(self):
        plan = dependencies.checkDependencies()
        if plan.needsInstall or plan.problems:
            self.skipTest("the engine's Python packages are not installed: " + plan.confirmationText())
        self.delayDisplay(self.storyTitle)
        workFolder = tempfile.mkdtemp(prefix=f"{self.__class__.__name__}-", dir=slicer.app.temporaryPath)
        summary = self.runStory(workFolder, ModelStore(self.method, os.path.join(workFolder, "models")))
        self.delayDisplay(f"Test passed{': ' + summary if summary else ''}")

    def runStory(self, workFolder: str, store: ModelStore) -> str:
        """Run the story with ``store`` (a model store inside ``workFolder``), assert its outcome; returns a
        line for the report (may be empty)."""
        raise NotImplementedError
