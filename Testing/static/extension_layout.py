"""What the static checks read: the extension's modules, their CMake lists, .ui files and parameter nodes.

A module is any top-level folder whose ``CMakeLists.txt`` says ``set(MODULE_NAME <folder name>)``, so a module added
later (IncrementalLap) is checked without editing the tests.
"""

from __future__ import annotations

import ast
import re
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
    def cmake(self) -> dict[str, list[str]]:
        return cmakeSets(self.folder / "CMakeLists.txt")

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


def modules() -> list[Module]:
    found = []
    for cmakeFile in sorted(REPO.glob("*/CMakeLists.txt")):
        names = cmakeSets(cmakeFile).get("MODULE_NAME")
        if names and names[0] == cmakeFile.parent.name:
            found.append(Module(names[0], cmakeFile.parent))
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
