"""The module files and effects cannot run here (they need Qt and a real Slicer), but every call they make into a
module Lib is checked against that Lib function's real signature, so a change of the Lib cannot silently break
them. Generic over every module folder."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import mrml_fixtures  # noqa: F401  (puts the module folders on sys.path)

REPO = Path(__file__).resolve().parents[2]
LIB_PACKAGES = {p.name for p in REPO.glob("*/*Lib") if (p / "__init__.py").is_file() and "SegmentEditor" not in p.name}
SCRIPTS = sorted(p for p in REPO.glob("*/*.py") if (p.parent / "CMakeLists.txt").is_file()) + \
    sorted(REPO.glob("*/SegmentEditor*Lib/SegmentEditor*Effect.py"))


def _libNames(tree: ast.Module) -> dict[str, object]:
    """Local name -> imported Lib module, function or class (``from XLib import a`` / ``from XLib.m import f``)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LIB_PACKAGES:
            for alias in node.names:
                try:
                    names[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                except ModuleNotFoundError:
                    names[alias.asname or alias.name] = getattr(importlib.import_module(node.module), alias.name)
    return names


def _calls(tree: ast.Module, names: dict[str, object]):
    """(call node, called Lib object) for ``name(...)`` and ``module.function(...)`` on imported Lib names."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id in names and callable(names[function.id]):
            yield node, names[function.id]
        elif isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) \
                and inspect.ismodule(names.get(function.value.id)):
            target = getattr(names[function.value.id], function.attr, None)
            assert target is not None, f"{function.value.id}.{function.attr} does not exist"
            if callable(target):
                yield node, target


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_calls_into_the_lib_match_its_signatures(script):
    tree = ast.parse(script.read_text(encoding="utf-8"))
    names = _libNames(tree)
    checked = 0
    for call, target in _calls(tree, names):
        if any(isinstance(a, ast.Starred) for a in call.args) or any(k.arg is None for k in call.keywords):
            continue  # *args / **kwargs: cannot be counted statically
        signature = inspect.signature(target)
        try:
            signature.bind(*[None] * len(call.args), **{k.arg: None for k in call.keywords})
        except TypeError as exc:
            pytest.fail(f"{script.name}:{call.lineno}: call of {target.__qualname__} does not match "
                        f"{signature}: {exc}")
        checked += 1
    if names:
        assert checked, f"{script.name} imports from a Lib but no call was checked"
