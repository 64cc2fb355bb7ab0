"""Static checks of what only a real Slicer can run: every module's files are listed in its CMake, its code only
looks up widgets its .ui has, the .ui's parameter bindings exist, and nothing heavy is imported by module code."""

from __future__ import annotations

import ast
import py_compile
import xml.etree.ElementTree as ET

import pytest

from extension_layout import (
    REPO,
    cmakeModuleFiles,
    modules,
    parameterNodeFields,
    uiNamesLookedUp,
    uiParameterNames,
    uiWidgets,
)

MODULES = modules()
ENGINE_MODULE_WIDGET = REPO / "DistillSegKernel" / "DistillSegKernelWidgets" / "engineModuleWidget.py"
HEAVY_PACKAGES = {"torch", "monai", "torchvision", "distillseg.oneshot", "distillseg.lap"}


def test_the_extension_has_its_modules():
    assert {"OneShotSeg", "SegmentEditorOneShotSeg", "IncrementalLap"} <= {m.name for m in MODULES}


@pytest.fixture(scope="module")
def cmakeFiles(tmp_path_factory):
    files = cmakeModuleFiles(tmp_path_factory.mktemp("cmake"))
    if files is None:
        pytest.skip("cmake is not installed")
    return files


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_cmake_builds_every_python_file_and_resource(module, cmakeFiles):
    built = cmakeFiles[module.name]
    listed = {str(p.relative_to(module.folder)) for p in module.pythonFiles() if "Testing" not in p.parts}
    assert set(built["scripts"]) == listed, "MODULE_PYTHON_SCRIPTS differs from the module's Python files"
    shipped = {str(p.relative_to(module.folder)) for p in module.resourceFiles()}
    assert set(built["resources"]) == shipped, "MODULE_PYTHON_RESOURCES differs from the module's resources"
    assert built["scripts"][0] == f"{module.name}.py" and built["tests"] == [f"{module.name}.py"]
    assert built["generic"] == ["TRUE"], "Slicer's generic module tests are off"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_every_python_file_compiles(module, tmp_path):
    for path in module.pythonFiles():
        py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.parametrize("module", [m for m in MODULES if m.uiFile.is_file()], ids=lambda m: m.name)
def test_widgets_the_code_uses_exist_in_the_ui(module):
    widgets = uiWidgets(module.uiFile)
    used = uiNamesLookedUp(module.mainScript)
    if "(EngineModuleWidget)" in module.mainScript.read_text(encoding="utf-8"):
        used |= uiNamesLookedUp(ENGINE_MODULE_WIDGET)  # the shared widget base reads these from every module's .ui
    assert used, "the module reads no widget from self.ui: is the check still looking at the right code?"
    assert used - set(widgets) == set(), f"{module.uiFile.name} lacks widgets the code uses"


@pytest.mark.parametrize("module", [m for m in MODULES if m.uiFile.is_file()], ids=lambda m: m.name)
def test_ui_parameter_bindings_exist_in_the_parameter_node(module):
    bound = uiParameterNames(module.uiFile)
    fields = parameterNodeFields(module.mainScript)
    assert bound, "no widget is bound to the parameter node"
    assert set(bound.values()) - fields == set(), "SlicerParameterName values without a parameter-node field"
    assert len(set(bound.values())) == len(bound), "two widgets bound to the same parameter"


@pytest.mark.parametrize("module", [m for m in MODULES if m.uiFile.is_file()], ids=lambda m: m.name)
def test_mrml_widgets_get_the_scene(module):
    root = ET.parse(module.uiFile).getroot()
    receivers = {c.findtext("receiver") for c in root.iter("connection")
                 if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
    mrmlWidgets = {name for name, w in uiWidgets(module.uiFile).items() if w.get("class", "").startswith("qMRML")
                   and w.get("class") != "qMRMLWidget"}
    assert mrmlWidgets - receivers == set(), "MRML widgets without a mrmlSceneChanged -> setMRMLScene connection"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_module_code_never_imports_torch_or_monai(module):
    """Torch and MONAI live in the engine's child process only (never at module load, never in the GUI)."""
    for path in module.pythonFiles():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not any(name == heavy or name.startswith(heavy + ".") for heavy in HEAVY_PACKAGES), \
                    f"{path.relative_to(REPO)} imports {name}"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_libs_have_no_qt(module):
    """Module Libs know MRML but not Qt (only the module file and the Segment Editor effect touch Qt)."""
    for lib in module.folder.glob("*Lib"):
        for path in lib.rglob("*.py"):
            if path.name.startswith("SegmentEditor") and path.name.endswith("Effect.py"):
                continue  # a Segment Editor effect file (SegmentEditorEffect.py, SegmentEditorLapEffect.py, ...)
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not imported & {"qt", "ctk", "PythonQt"}, f"{path.relative_to(REPO)} imports Qt"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.name)
def test_translated_texts_are_literals(module):
    """lupdate extracts only string literals inside ``_()``: ``_(variable)`` is never translated."""
    for path in module.pythonFiles():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_":
                assert len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str), f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}"
