"""What the static checks read: the extension's modules, their CMake lists, .ui files and parameter nodes.

A module is any top-level folder whose ``CMakeLists.txt`` builds it with ``oneshotseg_add_scripted_module(<folder
name>)``, so a module added later is checked without editing the tests. ``cmakeModuleFiles`` runs the real CMake on
the extension's module macro (with Slicer's macros stubbed) to list what each module ships.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _withoutComments(text: str) -> str:
    """CMake text without ``#`` comments (a ``#`` inside a quoted argument, as in a URL, is kept)."""
    lines = []
    for line in text.splitlines():
        quoted, kept = False, []
        for character in line:
            if character == '"':
                quoted = not quoted
            elif character == "#" and not quoted:
                break
            kept.append(character)
        lines.append("".join(kept))
    return "\n".join(lines)


def cmakeCommands(path: Path) -> list[tuple[str, list[str]]]:
    """``(command, arguments)`` of every top-level CMake command in the file, comments removed, in order."""
    text = _withoutComments(path.read_text(encoding="utf-8"))
    return [(name.lower(), re.findall(r'"[^"]*"|[^\s"]+', arguments))
            for name, arguments in re.findall(r"(\w+)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", text)]


def cmakeSets(path: Path) -> dict[str, list[str]]:
    """Variables assigned with ``set(NAME values…)``, ``${MODULE_NAME}`` expanded, quotes removed."""
    variables: dict[str, list[str]] = {}
    for command, arguments in cmakeCommands(path):
        if command == "set" and arguments:
            values = [a.strip('"') for a in arguments[1:]]
            moduleName = variables.get("MODULE_NAME", [""])[0]
            variables[arguments[0]] = [v.replace("${MODULE_NAME}", moduleName) for v in values]
    return variables


@dataclass
class Module:
    """A scripted module folder of the extension."""

    name: str
    folder: Path

    @property
    def mainScript(self) -> Path:
        return self.folder / f"{self.name}.py"

    @property
    def uiFile(self) -> Path:
        return self.folder / "Resources" / "UI" / f"{self.name}.ui"

    def pythonFiles(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*.py") if "__pycache__" not in p.parts)

    def resourceFiles(self) -> list[Path]:
        """Files a module ships besides its Python: everything under Resources/ and the non-Python files of its Lib."""
        files = [p for p in (self.folder / "Resources").rglob("*") if p.is_file()]
        for lib in self.folder.glob("*Lib"):
            files += [p for p in lib.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                      and "__pycache__" not in p.parts]
        return sorted(files)


MODULE_MACRO = "oneshotseg_add_scripted_module"


def modules() -> list[Module]:
    found = []
    for cmakeFile in sorted(REPO.glob("*/CMakeLists.txt")):
        names = [arguments[0] for command, arguments in cmakeCommands(cmakeFile) if command == MODULE_MACRO]
        if names and names[0] == cmakeFile.parent.name:
            found.append(Module(names[0], cmakeFile.parent))
    return found


_STUB_PROJECT = """cmake_minimum_required(VERSION 3.20)
project(OneShotSegModuleFiles NONE)
# Slicer's macros, stubbed: record what each module would build and install.
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(STUB "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  file(APPEND "${LISTING}" "${STUB_NAME}|${STUB_SCRIPTS}|${STUB_RESOURCES}|${STUB_WITH_GENERIC_TESTS}\n")
endmacro()
macro(slicer_add_python_unittest)
  cmake_parse_arguments(STUB "" "SCRIPT" "" ${ARGN})
  file(APPEND "${LISTING}" "test|${STUB_SCRIPT}\n")
endmacro()
set(BUILD_TESTING ON)
include("@REPO@/CMake/OneShotSegScriptedModule.cmake")
"""


def cmakeModuleFiles(workFolder: Path) -> dict[str, dict[str, list[str]]] | None:
    """What the module macro builds for each module: ``{name: {"scripts": [...], "resources": [...],
    "tests": [...], "generic": [...]}}`` (paths relative to the module folder), from a real CMake configure of the
    modules' own CMakeLists.txt; None when no ``cmake`` is installed."""
    cmake = shutil.which("cmake")
    if cmake is None:
        return None
    listing = workFolder / "listing.txt"
    text = _STUB_PROJECT.replace("@REPO@", REPO.as_posix())
    text += "".join(f'add_subdirectory("{m.folder.as_posix()}" {m.name})\n' for m in modules())
    (workFolder / "CMakeLists.txt").write_text(text, encoding="utf-8")
    subprocess.run([cmake, "-S", str(workFolder), "-B", str(workFolder / "build"), f"-DLISTING={listing}"],
                   check=True, capture_output=True, text=True, timeout=120)
    found: dict[str, dict[str, list[str]]] = {}
    lastModule = None
    for line in listing.read_text(encoding="utf-8").splitlines():
        fields = line.split("|")
        if fields[0] == "test":
            found[lastModule]["tests"].append(fields[1])
            continue
        lastModule = fields[0]
        found[lastModule] = {"scripts": [f for f in fields[1].split(";") if f],
                             "resources": [f for f in fields[2].split(";") if f],
                             "generic": [fields[3]], "tests": []}
    return found


def uiWidgets(uiFile: Path) -> dict[str, ET.Element]:
    """Every named widget of a Qt Designer file (the top-level widget included)."""
    root = ET.parse(uiFile).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def uiParameterNames(uiFile: Path) -> dict[str, str]:
    """Widget name -> its ``SlicerParameterName`` dynamic property (the parameter-node binding)."""
    bound = {}
    for name, widget in uiWidgets(uiFile).items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[name] = prop.findtext("string")
    return bound


def uiNamesLookedUp(script: Path) -> set[str]:
    """Names the module code reads as ``self.ui.<name>`` (``ui`` is filled from the .ui by childWidgetVariables)."""
    names = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ui" \
                and isinstance(node.value.value, ast.Name) and node.value.value.id == "self":
            names.add(node.attr)
    return names


def parameterNodeFields(script: Path) -> set[str]:
    """Fields of the classes decorated with ``@parameterNodeWrapper`` in a module file."""
    fields = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ClassDef) and any(
                (isinstance(d, ast.Name) and d.id == "parameterNodeWrapper") for d in node.decorator_list):
            fields |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
    return fields
