"""Static checks of the Segment Editor effects (only a real Slicer can run them): every effect the hidden module
registers is a ``ModelSegmentationEffect`` that sets everything the shared base reads — its own file (Slicer clones
an effect from it), an icon that ships, the method, the module whose packages it needs, and every text."""

from __future__ import annotations

import ast
import re

import pytest

from extension_layout import REPO

FOLDER = REPO / "SegmentEditorOneShotSeg"
BASE = REPO / "DistillSegKernel" / "DistillSegKernelWidgets" / "modelSegmentationEffect.py"
REQUIRED = ("sourceFile", "effectName", "iconFile", "method", "moduleName", "parameterPrefix", "tempPrefix", "texts")
STEPS = ("startSegmentation", "finishSegmentation", "discardSegmentation")


def _registeredEffectFiles() -> list[str]:
    """The file names the hidden module registers (its ``for fileName in (...)`` loop)."""
    tree = ast.parse((FOLDER / "SegmentEditorOneShotSeg.py").read_text(encoding="utf-8"))
    loops = [node for node in ast.walk(tree) if isinstance(node, ast.For) and getattr(node.target, "id", "") ==
             "fileName"]
    assert len(loops) == 1, "the effect registration loop was not found"
    return [element.value for element in loops[0].iter.elts]


def _classOf(path):
    classes = [n for n in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(n, ast.ClassDef)]
    assert len(classes) == 1, f"{path.name}: one class per effect file"
    return classes[0]


def _assignments(classNode) -> dict[str, ast.expr]:
    return {target.id: node.value for node in classNode.body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def test_the_module_registers_both_effects():
    assert _registeredEffectFiles() == ["SegmentEditorEffect.py", "SegmentEditorLapEffect.py"]


@pytest.mark.parametrize("fileName", _registeredEffectFiles())
def test_effect_sets_what_the_shared_base_reads(fileName):
    path = FOLDER / "SegmentEditorOneShotSegLib" / fileName
    effect = _classOf(path)
    assert effect.name == path.stem, "Slicer finds the effect class by its file's name"
    assert [ast.unparse(base) for base in effect.bases] == ["ModelSegmentationEffect"]
    values = _assignments(effect)
    assert set(REQUIRED) - set(values) == set(), f"{fileName} leaves base attributes unset"
    assert ast.unparse(values["sourceFile"]) == "__file__", "clone() must load the effect's own file"
    assert (path.parent / ast.literal_eval(values["iconFile"])).is_file()
    assert set(STEPS) <= {n.name for n in effect.body if isinstance(n, ast.FunctionDef)}
    baseSource = BASE.read_text(encoding="utf-8")
    textsRead = set(re.findall(r'self\.texts\["(\w+)"\]', baseSource))
    textsSet = {ast.literal_eval(key) for key in values["texts"].keys}
    assert textsRead and textsRead == textsSet, f"{fileName}: texts {textsSet} but the base reads {textsRead}"
    for value in values["texts"].values:  # translatable: _("...") around a literal, as lupdate expects
        assert isinstance(value, ast.Call) and ast.unparse(value.func) == "_", ast.unparse(value)


def test_the_two_effects_keep_apart_their_parameters():
    """Both effects store their choices in the same segment editor node: the names must differ."""
    prefixes = [ast.literal_eval(_assignments(_classOf(FOLDER / "SegmentEditorOneShotSegLib" / f))["parameterPrefix"])
                for f in _registeredEffectFiles()]
    assert len(set(prefixes)) == len(prefixes)
