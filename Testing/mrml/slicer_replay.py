"""Replays of how Slicer loads and drives scripted modules and Segment Editor effects, on slicer-core (real MRML,
no Qt), so the extension's module and effect files run here the way Slicer runs them. Each replay follows the
Slicer source it names (tags v5.10.0 and v5.12.0 read the same for all of them):

- ``loadSourceAsModule``: ``Base/QTCore/qSlicerScriptedUtils.cxx`` (the file executed as a plain module,
  ``spec_from_file_location``, put into ``sys.modules`` under the given name before it runs);
- ``ScriptedEffect.setPythonSource``: ``Modules/Loadable/Segmentations/EditorEffects/
  qSlicerSegmentEditorScriptedEffect.cxx`` (module name = the file's parent folder name, class name = the file's
  base name, looked up in ``sys.modules`` first, the file loaded as a module only when that fails; afterwards
  ``slicer.<module name>`` is the effect instance);
- ``loadScriptedModule``: ``Base/QTGUI/qSlicerScriptedLoadableModule.cxx`` and
  ``qSlicerScriptedLoadableModuleFactory.cxx`` (the module's folder appended to ``sys.path``, module name = class
  name = file base name);
- ``SegmentEditor``: ``Modules/Loadable/Segmentations/Widgets/qMRMLSegmentEditorWidget.cxx`` (every registered
  effect cloned, given the parameter node, ``setMRMLDefaults``, its icon put on a button, ``setupOptionsFrame``; ``saveStateForUndo`` goes
  to the editor logic, which saves the segmentation the editor has; ``cleanup`` of every effect when it is
  destroyed) and ``qSlicerSegmentEditorAbstractEffect.cxx`` (effect parameters are attributes
  ``<effect name>.<parameter>`` of the segment editor node);
- ``SegmentEditorEffects.AbstractScriptedSegmentEditorEffect``: ``Modules/Loadable/Segmentations/EditorEffects/
  Python/SegmentEditorEffects/AbstractScriptedSegmentEditorEffect.py`` (constructor, ``register``, ``cleanup``).

``slicerGui`` (a fixture) installs these with a Qt stand-in (``qt_stand_in``) and ``slicer.app``, ``slicer.i18n``
and ``slicer.ScriptedLoadableModule`` stand-ins, and removes every trace afterwards.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import types
import unittest
from pathlib import Path
from types import SimpleNamespace

import pytest

import qt_stand_in

import slicer

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CURSOR = "qSlicerSegmentEditorAbstractEffect::createCursor"


def loadSourceAsModule(moduleName: str, filePath: str) -> None:
    """``qSlicerScriptedUtils::loadSourceAsModule``: the Python it runs, verbatim in effect."""
    spec = importlib.util.spec_from_file_location(moduleName, filePath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[moduleName] = module
    spec.loader.exec_module(module)


def _classFromSource(filePath: str, moduleName: str, className: str):
    """The class lookup both ``setPythonSource`` replays share: ``sys.modules`` first, else load the file."""
    module = sys.modules.get(moduleName)
    if module is None or not hasattr(module, className):
        loadSourceAsModule(moduleName, filePath)
        module = sys.modules[moduleName]
    return getattr(module, className, None)


class ScriptedEffect:
    """``qSlicerSegmentEditorScriptedEffect``: the C++ adaptor a Python effect gets as ``scriptedEffect``."""

    def __init__(self, parent=None):
        self.name = "UnnamedScriptedEffect"
        self.title = ""
        self.perSegment = True
        self.requireSegments = True
        self.pythonSource = ""
        self.loadError: BaseException | None = None
        self.optionsWidgets: list = []
        self.iconOnButton = None  # the effect's icon, as the Segment Editor's button shows it
        self.editor: SegmentEditor | None = None
        self._self = None
        self._parameterSetNode = None

    def setPythonSource(self, filePath: str) -> bool:
        """False (and ``self()`` None) when the file cannot be loaded or has no class of its base name, as in
        Slicer, which prints the Python error and goes on."""
        if not filePath.endswith((".py", ".pyc")):
            return False
        moduleName = Path(filePath).parent.name
        className = Path(filePath).name.split(".")[0]  # QFileInfo::baseName: up to the first dot
        if not className.endswith("Effect"):
            className += "Effect"
        try:
            effectClass = _classFromSource(filePath, moduleName, className)
        except Exception as error:  # PythonQt prints the error, setPythonSource returns false
            self.loadError = error
            traceback.print_exception(error)
            return False
        if effectClass is None:
            self.loadError = RuntimeError(f"class {className} was not found in {filePath}")
            return False
        self._self = effectClass(self)
        self.pythonSource = filePath
        setattr(slicer, moduleName, self._self)  # qSlicerScriptedUtils::setModuleAttribute("slicer", ...)
        return True

    def self(self):
        return self._self

    # --- qSlicerSegmentEditorAbstractEffect
    def parameterSetNode(self):
        return self._parameterSetNode

    def setParameterSetNode(self, node) -> None:
        self._parameterSetNode = node

    def parameter(self, name: str) -> str:
        node = self._parameterSetNode
        return node.GetAttribute(f"{self.name}.{name}") or node.GetAttribute(name) or ""

    def setParameter(self, name: str, value) -> None:
        self._parameterSetNode.SetAttribute(f"{self.name}.{name}", str(value))

    def setParameterDefault(self, name: str, value) -> None:
        if not self._parameterSetNode.GetAttribute(f"{self.name}.{name}"):
            self.setParameter(name, value)

    def addOptionsWidget(self, widget) -> None:
        self.optionsWidgets.append(widget)

    def addLabeledOptionsWidget(self, label: str, widget) -> None:
        self.optionsWidgets.append((label, widget))

    def saveStateForUndo(self) -> None:
        self.editor.saveStateForUndo()

    def createCursor(self, viewWidget):
        """The effect's own ``createCursor`` if it has one, else the C++ default (``DEFAULT_CURSOR`` here)."""
        method = getattr(type(self._self), "createCursor", None)
        return method(self._self, viewWidget) if method is not None else DEFAULT_CURSOR


class EffectFactory:
    """``qSlicerSegmentEditorEffectFactory``: one registered effect per name (a second one is refused)."""

    _instance = None

    def __init__(self):
        self.registered: list[ScriptedEffect] = []

    @classmethod
    def instance(cls) -> "EffectFactory":
        cls._instance = cls._instance or cls()
        return cls._instance

    def registerEffect(self, effect: ScriptedEffect) -> bool:
        if not effect.name or any(e.name == effect.name for e in self.registered):
            return False
        self.registered.append(effect)
        return True

    def names(self) -> list[str]:
        return [effect.name for effect in self.registered]


class AbstractScriptedSegmentEditorEffect:
    """Slicer's Python base of scripted effects (constructor, ``register``, ``cleanup``)."""

    def __init__(self, scriptedEffect):
        self.scriptedEffect = scriptedEffect

    def register(self):
        slicer.qSlicerSegmentEditorEffectFactory.instance().registerEffect(self.scriptedEffect)

    def cleanup(self):
        pass


class SegmentEditor:
    """``qMRMLSegmentEditorWidget`` around the real editor logic of slicer-core: a copy of every registered effect,
    set up as the widget sets them up; ``close()`` is the widget's destructor (``cleanup`` of each effect)."""

    def __init__(self, scene):
        self.scene = scene
        self.node = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
        self.logic = slicer.vtkSlicerSegmentEditorLogic()
        self.logic.SetMRMLScene(scene)
        self.logic.SetSegmentEditorNode(self.node)
        self.history = slicer.vtkSegmentationHistory()
        self.logic.SetSegmentationHistory(self.history)
        self.effects: dict[str, object] = {}
        for registered in EffectFactory.instance().registered:
            clone = registered.self().clone()
            clone.editor = self
            clone.setParameterSetNode(self.node)
            effect = clone.self()
            effect.setMRMLDefaults()
            clone.iconOnButton = effect.icon()  # the effect's button
            effect.setupOptionsFrame()
            self.effects[clone.name] = effect

    def select(self, segmentationNode, sourceVolumeNode) -> None:
        self.node.SetAndObserveSegmentationNode(segmentationNode)
        self.node.SetAndObserveSourceVolumeNode(sourceVolumeNode)
        self.logic.SetSegmentationNode(segmentationNode)
        self.logic.SetSourceVolumeNode(sourceVolumeNode)

    def saveStateForUndo(self) -> None:
        self.logic.SaveStateForUndo()

    def close(self) -> None:
        for effect in self.effects.values():
            effect.cleanup()


def loadScriptedModule(filePath: Path):
    """Load a module file as Slicer's scripted module factory does; returns the module's instance."""
    sys.path.append(str(filePath.parent))
    name = filePath.name.split(".")[0]
    moduleClass = _classFromSource(str(filePath), name, name)
    return moduleClass(SimpleNamespace(path=str(filePath)))


class ParameterNode:
    """What module widgets use of a ``parameterNodeWrapper`` object (``Base/Python/slicer/parameterNodeWrapper/
    wrapper.py``): fields as attributes, ``connectGui``/``disconnectGui``, VTK observation of the real node."""

    def __init__(self, scene, **fields):
        self.parameterNode = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
        self.__dict__.update(fields)

    def connectGui(self, gui):
        return gui

    def disconnectGui(self, tag) -> None:
        pass

    def AddObserver(self, event, callback, priority=0.0):
        return self.parameterNode.AddObserver(event, callback, priority)

    def RemoveObserver(self, tag) -> None:
        self.parameterNode.RemoveObserver(tag)


class App:
    """``slicer.app`` without a main window (as ``--no-main-window``): signal connections recorded (``emit`` fires
    them), a temporary path, the startup environment; error dialogs are recorded in ``errors``."""

    def __init__(self, temporaryPath: Path):
        self.temporaryPath = str(temporaryPath)
        self.connections: dict[str, list] = {}
        self.errors: list[str] = []

    def topLevelWidgets(self) -> list:
        return []

    def startupEnvironment(self):
        return SimpleNamespace(keys=lambda: list(os.environ), value=os.environ.get)

    def testingEnabled(self) -> bool:
        return False

    def setOverrideCursor(self, cursor) -> None:
        pass

    def restoreOverrideCursor(self) -> None:
        pass

    def connect(self, signal: str, slot) -> None:
        self.connections.setdefault(signal, []).append(slot)

    def emit(self, signal: str) -> None:
        for slot in self.connections.get(signal, []):
            slot()

    def processEvents(self) -> None:
        pass


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


class ScriptedLoadableModule:
    def __init__(self, parent):
        self.parent = parent


class ScriptedLoadableModuleWidget:
    """``Base/Python/slicer/ScriptedLoadableModule.py``: the module name from the class name; ``onReload`` (which
    re-executes the module file only) is recorded in ``reloaded``."""

    def __init__(self, parent=None):
        self.parent = parent
        self.moduleName = self.__class__.__name__.removesuffix("Widget")
        self.reloaded = False

    def onReload(self):
        self.reloaded = True


@pytest.fixture
def slicerGui(monkeypatch, tmp_path):
    """The stand-ins above installed as Slicer's modules; yields ``slicer.app``. Everything they imported or set
    is removed afterwards, so no other test sees a module bound to the Qt stand-in."""
    monkeypatch.setenv("ONESHOTSEG_HOME", str(tmp_path / "home"))
    modulesBefore, slicerBefore, pathBefore = set(sys.modules), set(vars(slicer)), list(sys.path)
    app = App(tmp_path)
    effects = _module("SegmentEditorEffects", AbstractScriptedSegmentEditorEffect=AbstractScriptedSegmentEditorEffect,
                      __path__=[])
    stubs = {
        "qt": qt_stand_in.module(),
        "slicer.i18n": _module("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text),
        "slicer.ScriptedLoadableModule": _module(
            "slicer.ScriptedLoadableModule", ScriptedLoadableModule=ScriptedLoadableModule,
            ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
            ScriptedLoadableModuleTest=unittest.TestCase),
        "SegmentEditorEffects": effects,
        "SegmentEditorEffects.AbstractScriptedSegmentEditorEffect": effects,
        "qSlicerSegmentationsEditorEffectsPythonQt": _module("qSlicerSegmentationsEditorEffectsPythonQt",
                                                             qSlicerSegmentEditorScriptedEffect=ScriptedEffect),
    }
    for name, module in stubs.items():
        sys.modules[name] = module
    slicer.app = app
    slicer.i18n = stubs["slicer.i18n"]
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kwargs: app.errors.append(text))
    slicer.qSlicerSegmentEditorEffectFactory = EffectFactory
    EffectFactory._instance = None
    yield app
    ours = set(stubs) | {p.name + suffix for p in REPO.iterdir() if (p / f"{p.name}.py").is_file()
                         for suffix in ("", "Lib", "Widgets")}
    for name in set(sys.modules) - modulesBefore:
        if name in ours or name.split(".")[0] in ours:
            del sys.modules[name]
    for name in set(vars(slicer)) - slicerBefore:
        delattr(slicer, name)
    sys.path[:] = pathBefore
