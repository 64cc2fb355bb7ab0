"""DistillSegKernel: the hidden module at the bottom of the extension, shared by OneShotSeg, IncrementalLap and the
Segment Editor effects (which depend on it as siblings and never import each other's modules).

It holds what every module needs to run the ``distillseg`` engine: ``DistillSegKernelLib`` (Qt-free: engine
discovery, dependencies, job runner and protocol, job control, model store, volume files, segment labels) and
``DistillSegKernelWidgets`` (the module widget base and the Segment Editor effect base). The engine is found once,
here: when Slicer instantiates this module it makes the engine's torch-free contract package importable (a
developer checkout's ``distillseg/`` is not on ``sys.path``; an installed extension's is). Slicer instantiates
modules in the order of their names (``qSlicerAbstractModuleFactoryManager::instantiateModules`` walks a ``QMap``),
so this module comes before the modules whose files import the contract; ``Testing/static`` checks that order.
"""

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest

from DistillSegKernelLib import engine
from DistillSegKernelWidgets.moduleDescription import describeModule


class DistillSegKernel(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        describeModule(
            self.parent, _("DistillSeg kernel"), hidden=True, dependencies=["Segmentations"],
            helpText=_("This hidden module holds what the OneShotSeg and IncrementalLap modules and their Segment "
                       "Editor effects share: finding and running the distillseg engine, the model store, and moving "
                       "volumes and segmentations to and from the engine."))
        engine.ensureEngineImportable()


class DistillSegKernelTest(ScriptedLoadableModuleTest):
    """The engine is found, its contract imports without torch, and the dependency check can read its list."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_EngineIsFound()

    def test_EngineIsFound(self):
        from DistillSegKernelLib import dependencies

        root = engine.engineRoot()
        self.assertTrue((root / engine.ENGINE_PACKAGE / "contract" / "__init__.py").is_file())
        import distillseg.contract.manifest  # noqa: F401  (the only engine code imported in Slicer's process)

        self.assertTrue(dependencies.ENGINE_REQUIREMENTS_FILE.is_file())
        dependencies.checkDependencies()  # reads metadata only: runs on a factory Slicer without torch
        self.delayDisplay("Test passed")
