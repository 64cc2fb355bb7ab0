"""Reloading a module's packages for developers. Slicer's *Reload* (``slicer.util.reloadScriptedModule``) executes
only the module's own file again; the packages that file imports stay the ones in ``sys.modules``, so edits to a
Lib would not be seen. The module widgets reload their packages first (as SlicerNNUNet and MONAIAuto3DSeg do)."""

from __future__ import annotations

import importlib
import sys


def reloadPackages(packageNames) -> list[str]:
    """Import every loaded module of the packages ``packageNames`` (the packages included) afresh, in the order
    they were first imported, so each sees the others' new code; returns their names."""
    packages = set(packageNames)
    loaded = [name for name in sys.modules if name.split(".")[0] in packages]
    for name in loaded:
        del sys.modules[name]
    for name in loaded:
        importlib.import_module(name)
    return loaded
