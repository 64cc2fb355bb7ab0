"""The top-level CMakeLists.txt follows Slicer's extension template, adds every module and installs the engine; the
catalog entry OneShotSeg.json agrees with it; the icon and screenshots it names exist."""

from __future__ import annotations

import json
import re

from PIL import Image

from extension_layout import REPO, cmakeCommands, cmakeSets, modules

TOP = REPO / "CMakeLists.txt"
# Keys of Slicer's catalog entry schema v1.0.1 (Schemas/slicer-extension-catalog-entry-schema-v1.0.1.json).
CATALOG_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
                "build_subdirectory", "enabled", "tier"}
CATALOG_REQUIRED = {"$schema", "category", "scm_url"}


def _project():
    return next(args[0] for command, args in cmakeCommands(TOP) if command == "project")


def test_top_level_cmake_is_in_template_order():
    commands = cmakeCommands(TOP)
    order = [c for c, _ in commands]
    position = {name: order.index(name) for name in ("cmake_minimum_required", "project", "find_package")}
    assert position["cmake_minimum_required"] == 0 and position["project"] == 1
    metadata = [i for i, (c, args) in enumerate(commands) if c == "set" and args[0].startswith("EXTENSION_")]
    assert metadata and position["project"] < min(metadata) and max(metadata) < position["find_package"]
    includes = [args[0] for c, args in commands if c == "include"]
    assert includes == ["${Slicer_USE_FILE}", "${CMAKE_CURRENT_SOURCE_DIR}/CMake/OneShotSegScriptedModule.cmake",
                        "${Slicer_EXTENSION_GENERATE_CONFIG}", "${Slicer_EXTENSION_CPACK}"]
    moduleMacro = includes.index("${CMAKE_CURRENT_SOURCE_DIR}/CMake/OneShotSegScriptedModule.cmake")
    included = [i for i, (c, _) in enumerate(commands) if c == "include"]
    assert included[moduleMacro] < min(i for i, (c, _) in enumerate(commands) if c == "add_subdirectory")
    subdirectories = [i for i, (c, _) in enumerate(commands) if c == "add_subdirectory"]
    generate = next(i for i, (c, args) in enumerate(commands) if c == "include" and "GENERATE_CONFIG" in args[0])
    assert position["find_package"] < min(subdirectories) and max(subdirectories) < generate
    variables = cmakeSets(TOP)
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert variables.get(key) and variables[key][0], f"{key} is not set"
    assert variables["EXTENSION_DEPENDS"] == ["PyTorch"]
    assert not _project().startswith("Slicer")  # the Extensions Index refuses names starting with "Slicer"


def test_slicer_versions_too_old_for_the_engine_do_not_build_it():
    """``SlicerConfigVersion.cmake`` refuses a Slicer older than the version asked for: 5.8 (Python 3.9) builds no
    package, so its Extensions Manager never offers one; the dependency check says the same in one sentence."""
    found = [args for command, args in cmakeCommands(TOP) if command == "find_package" and args[0] == "Slicer"]
    assert found == [["Slicer", "5.10", "REQUIRED"]]
    sentence = (REPO / "DistillSegKernel" / "DistillSegKernelLib" / "dependencies.py").read_text(encoding="utf-8")
    assert "use Slicer 5.10 or later" in sentence and "MINIMUM_PYTHON = (3, 10)" in sentence


def test_every_module_is_added():
    added = {args[0] for command, args in cmakeCommands(TOP) if command == "add_subdirectory"}
    assert added == {m.name for m in modules()}


def test_engine_package_is_installed_next_to_the_modules():
    text = TOP.read_text()
    assert re.search(r"file\(GLOB_RECURSE DISTILLSEG_PYTHON_SCRIPTS[^)]*distillseg/\*\.py", text, re.S)
    call = re.search(r"ctkMacroCompilePythonScript\(([^)]*)\)", text, re.S).group(1)
    assert "${DISTILLSEG_PYTHON_SCRIPTS}" in call
    assert "${Slicer_QTSCRIPTEDMODULES_LIB_DIR}" in call and "${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}" in call
    assert (REPO / "distillseg" / "__main__.py").is_file()  # `python -m distillseg` is what the job runner starts


def test_catalog_entry_agrees_with_cmake():
    path = REPO / f"{_project()}.json"
    assert path.is_file(), "the catalog entry must be named after project()"
    entry = json.loads(path.read_text())
    assert CATALOG_REQUIRED <= set(entry) <= CATALOG_KEYS
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry["category"] == "Segmentation"
    assert entry["build_dependencies"] == cmakeSets(TOP)["EXTENSION_DEPENDS"]
    assert entry["build_subdirectory"] == "."
    assert cmakeSets(TOP)["EXTENSION_HOMEPAGE"][0].startswith(entry["scm_url"])
    assert entry["scm_url"].split("/")[-1].startswith("Slicer")  # the repository name convention


def _repoFile(url: str):
    """The repository file a raw.githubusercontent URL of this repository's main branch points at."""
    entry = json.loads((REPO / f"{_project()}.json").read_text())
    prefix = entry["scm_url"].replace("https://github.com/", "https://raw.githubusercontent.com/") + \
        f"/{entry['scm_revision']}/"
    assert url.startswith(prefix), f"{url} is not a file of {entry['scm_url']}"
    return REPO / url[len(prefix):]


def test_icon_and_screenshots_exist():
    variables = cmakeSets(TOP)
    icon = _repoFile(variables["EXTENSION_ICONURL"][0])
    with Image.open(icon) as image:
        assert image.format == "PNG" and image.size == (128, 128)
    screenshots = " ".join(variables["EXTENSION_SCREENSHOTURLS"]).split()
    assert screenshots
    for url in screenshots:
        with Image.open(_repoFile(url)) as image:
            assert image.format == "PNG" and min(image.size) >= 400
    assert (REPO / "LICENSE").is_file()
