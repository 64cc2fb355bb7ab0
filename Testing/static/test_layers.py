"""The import layers of the extension, read from the code: the engine never imports Slicer, VTK, Qt or a module Lib;
the Slicer side imports only the engine's contract package; the contract needs nothing heavier than numpy and
Pillow; the method modules share the kernel module and never import each other; Libs never change ``sys.path``; and
the kernel is instantiated before the modules that import the contract."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from extension_layout import REPO, modules

KERNEL = "DistillSegKernel"
METHOD_MODULES = {"OneShotSeg": "OneShotSegLib", "IncrementalLap": "IncrementalLapLib"}
SLICER_SIDE = {"slicer", "vtk", "qt", "ctk", "PythonQt", "SegmentEditorEffects", "mrml"}
MODULE_PACKAGES = {f"{m.name}{suffix}" for m in modules() for suffix in ("", "Lib", "Widgets")}


def _imports(path: Path) -> set[str]:
    """Every module name the file imports (``from . import x`` resolved to the file's own package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
    return names


def _pythonFiles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _top(name: str) -> str:
    return name.split(".")[0]


def test_the_engine_never_imports_slicer_vtk_qt_or_a_module():
    for path in _pythonFiles(REPO / "distillseg"):
        bad = {name for name in _imports(path) if _top(name) in SLICER_SIDE | MODULE_PACKAGES}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_the_contract_needs_only_the_standard_library_numpy_and_pillow():
    allowed = set(sys.stdlib_module_names) | {"numpy", "PIL", "__future__"}
    for path in _pythonFiles(REPO / "distillseg" / "contract"):
        for name in _imports(path):
            assert _top(name) in allowed or name.startswith("distillseg.contract"), \
                f"{path.relative_to(REPO)} imports {name}"


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.name)
def test_slicer_side_code_imports_only_the_engines_contract(module):
    for path in module.pythonFiles():
        engine = {name for name in _imports(path) if _top(name) == "distillseg"}
        assert all(name.startswith("distillseg.contract") for name in engine), \
            f"{path.relative_to(REPO)} imports {engine}"


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.name)
def test_no_module_imports_another_methods_module(module):
    """The kernel imports no module above it; a method module imports neither the other method's Lib nor the effects.
    Only the effects module hosts both methods' effects, each importing its own method's Lib."""
    own = METHOD_MODULES.get(module.name)
    forbidden = set(MODULE_PACKAGES) - {f"{KERNEL}Lib", f"{KERNEL}Widgets", f"{module.name}Lib"}
    if module.name == f"SegmentEditor{'OneShotSeg'}":
        forbidden -= set(METHOD_MODULES.values())
    for path in module.pythonFiles():
        bad = {name for name in _imports(path) if _top(name) in forbidden}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
    if own:
        assert f"{KERNEL}" in _declaredDependencies(module.mainScript)


def _declaredDependencies(script: Path) -> list[str]:
    """The ``dependencies`` the module file passes to ``describeModule``."""
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "describeModule":
            return next(ast.literal_eval(k.value) for k in node.keywords if k.arg == "dependencies")
    return []


def test_every_other_module_depends_on_the_kernel():
    others = [m for m in modules() if m.name != KERNEL]
    assert others and all(KERNEL in _declaredDependencies(m.mainScript) for m in others)


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.name)
def test_importing_a_lib_leaves_sys_path_alone(module):
    """No statement that runs at import time (outside function and class bodies) touches ``sys.path`` or asks the
    kernel to find the engine: only the kernel module's constructor does that, once."""
    for lib in [p for p in module.folder.iterdir() if p.is_dir() and p.name.endswith(("Lib", "Widgets"))]:
        for path in _pythonFiles(lib):
            atImport = [statement for statement in ast.parse(path.read_text(encoding="utf-8")).body
                        if not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                        and not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))]
            text = "\n".join(ast.unparse(statement) for statement in atImport)
            assert "sys.path" not in text and "ensureEngineImportable" not in text, \
                f"{path.relative_to(REPO)} changes sys.path when imported"


def test_the_kernel_is_instantiated_before_the_modules_that_import_the_contract():
    """Slicer instantiates every registered module in the order of a QMap's keys, its module names
    (``Base/QTCore/qSlicerAbstractModuleFactoryManager.cxx``, ``instantiateModules``), executing each module file;
    the kernel's constructor makes the contract importable, so it must come first (QString order of ASCII names is
    Python's str order)."""
    names = sorted(m.name for m in modules())
    assert names[0] == KERNEL
    kernelFile = (REPO / KERNEL / f"{KERNEL}.py").read_text(encoding="utf-8")
    assert "engine.ensureEngineImportable()" in kernelFile
