"""The effects module and every Segment Editor effect file, loaded the way Slicer loads them (``slicer_replay``:
``qSlicerScriptedUtils::loadSourceAsModule``, ``qSlicerSegmentEditorScriptedEffect::setPythonSource``,
``qMRMLSegmentEditorWidget``): at ``startupCompleted`` each effect file registers its class, the Segment Editor's
copies of the effects are instances of that same class, and the effects' package stays a package."""

from __future__ import annotations

import sys

import pytest

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from slicer_replay import REPO, EffectFactory, SegmentEditor, loadScriptedModule, slicerGui  # noqa: F401

EFFECTS_MODULE = REPO / "SegmentEditorOneShotSeg" / "SegmentEditorOneShotSeg.py"
EFFECTS_PACKAGE = EFFECTS_MODULE.parent / "SegmentEditorOneShotSegLib"
EFFECT_FILES = sorted(EFFECTS_PACKAGE.glob("SegmentEditor*Effect.py"))


@pytest.fixture
def registered(slicerGui):  # noqa: F811
    """The effects module instantiated and Slicer's ``startupCompleted`` emitted: the effects it registered."""
    loadScriptedModule(EFFECTS_MODULE)
    slicerGui.emit("startupCompleted()")
    return EffectFactory.instance().registered


def test_every_effect_file_registers_its_class(registered):
    assert len(EFFECT_FILES) == 2
    assert sorted(effect.pythonSource for effect in registered) == [path.as_posix() for path in EFFECT_FILES]
    for effect in registered:
        assert effect.loadError is None
        assert type(effect.self()).__name__ == effect.pythonSource.rsplit("/", 1)[1][:-3]
    assert sorted(EffectFactory.instance().names()) == ["Laparoscopic", "One-shot"]


def test_the_effects_package_stays_a_package(registered):
    """Slicer looks an effect's class up in ``sys.modules[<folder name>]``: if that is a plain module made of one
    effect file, the other effects' classes are not there and every clone executes its file again."""
    package = sys.modules[EFFECTS_PACKAGE.name]
    assert hasattr(package, "__path__") and package.__file__ == str(EFFECTS_PACKAGE / "__init__.py")
    for effect in registered:
        assert type(effect.self()) is getattr(package, type(effect.self()).__name__)


def test_the_segment_editor_copies_are_of_the_registered_classes(registered, scene):  # noqa: F811
    editor = SegmentEditor(scene)
    assert sorted(editor.effects) == ["Laparoscopic", "One-shot"]
    for effect in registered:
        copy = editor.effects[effect.name]
        assert type(copy) is type(effect.self()) and copy.scriptedEffect is not effect
        assert copy.scriptedEffect.title == effect.title and not copy.scriptedEffect.perSegment
        assert copy.scriptedEffect.iconOnButton.path.endswith(f"{type(copy).__name__}.png")  # an icon that ships
    editor.close()
