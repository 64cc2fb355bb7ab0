"""Developer Reload: Slicer executes only the module file again (``slicer.util.reloadScriptedModule``), so the module
widgets import their Lib packages afresh first; checked on a package written here and on the real widget base."""

from __future__ import annotations

import sys

from mrml_fixtures import REPO  # noqa: F401  (puts the module folders on sys.path)
from slicer_replay import slicerGui  # noqa: F401  (pytest fixture)
from DistillSegKernelLib.moduleReload import reloadPackages


def test_a_reloaded_package_sees_its_edited_files(tmp_path, monkeypatch):
    package = tmp_path / "EditedLib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("VALUE = 1\n")
    (package / "user.py").write_text("from .base import VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import EditedLib.user

    (package / "base.py").write_text("VALUE = 2  # edited by the developer\n")
    try:
        assert reloadPackages(["EditedLib"]) == ["EditedLib", "EditedLib.base", "EditedLib.user"]
        assert sys.modules["EditedLib.user"].VALUE == 2 and EditedLib.user.VALUE == 1  # the old module is gone
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "EditedLib"]:
            del sys.modules[name]


def test_the_module_widget_reloads_the_kernel_and_its_lib(slicerGui):  # noqa: F811
    import DistillSegKernelLib.jobRunner  # noqa: F401  (loaded, as in Slicer)
    import OneShotSegLib.oneshotJobs  # noqa: F401
    from DistillSegKernelWidgets.engineModuleWidget import EngineModuleWidget

    class OneShotSegWidget(EngineModuleWidget):
        pass

    packages = ("DistillSegKernelLib", "DistillSegKernelWidgets", "OneShotSegLib")
    loaded = {name: module for name, module in sys.modules.items() if name.split(".")[0] in packages}
    try:
        OneShotSegWidget().onReload()
        for name in ("OneShotSegLib.oneshotJobs", "DistillSegKernelLib.jobRunner",
                     "DistillSegKernelWidgets.engineModuleWidget"):
            assert sys.modules[name] is not loaded[name], f"{name} was not reloaded"
    finally:  # the other tests go on with the modules they imported
        for name in [n for n in sys.modules if n.split(".")[0] in packages]:
            del sys.modules[name]
        sys.modules.update(loaded)


def test_slicer_reloads_the_module_file_after_the_packages(slicerGui, monkeypatch):  # noqa: F811
    import DistillSegKernelLib.moduleReload as moduleReload
    from DistillSegKernelWidgets.engineModuleWidget import EngineModuleWidget

    class OneShotSegWidget(EngineModuleWidget):
        pass

    widget = OneShotSegWidget()
    reloaded = []
    monkeypatch.setattr(moduleReload, "reloadPackages", lambda names: reloaded.append((list(names), widget.reloaded)))
    widget.onReload()
    assert reloaded == [(["DistillSegKernelLib", "DistillSegKernelWidgets", "OneShotSegLib"], False)]
    assert widget.reloaded  # Slicer's own reload of the module file comes after the packages
