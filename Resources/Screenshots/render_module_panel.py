"""Render a module panel (OneShotSeg, IncrementalLap) from its real .ui file, without Slicer, for the README and the catalog.

Slicer's own widgets (qMRMLNodeComboBox, ctkCollapsibleButton, ...) are not available outside Slicer, so each is
drawn as the plain Qt widget it looks like (combo box, group box, line edit); the layout, labels, tooltips and
buttons are the .ui's own. The values shown (node names, progress, log lines) are given in a JSON file, taken from a
real engine run (see README "Using OneShotSeg in Slicer").

    python render_module_panel.py OneShotSeg/Resources/UI/OneShotSeg.ui state.json panel.png

Needs PySide6 (not a dependency of the project: ``pip install PySide6-Essentials`` in any Python) and runs under
``QT_QPA_PLATFORM=offscreen``.
"""

import json
import sys
import xml.etree.ElementTree as ET

from PySide6.QtCore import QBuffer, QByteArray, QIODevice
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QLabel, QLineEdit, QListWidget,
                               QPlainTextEdit, QTableWidget, QTableWidgetItem)

STAND_INS = {"qMRMLWidget": "QWidget", "ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "qMRMLCheckableNodeComboBox": "QComboBox", "ctkPathLineEdit": "QLineEdit"}
SLICER_ONLY_PROPERTIES = {"nodeTypes", "showChildNodeTypes", "noneEnabled", "addEnabled", "removeEnabled",
                          "noneDisplay", "collapsed"}


def plainQtUi(path):
    root = ET.parse(path).getroot()
    for widget in root.iter("widget"):
        original = widget.get("class")
        widget.set("class", STAND_INS.get(original, original))
        for prop in list(widget.findall("property")):
            if prop.get("name") in SLICER_ONLY_PROPERTIES:
                widget.remove(prop)
            elif original == "ctkCollapsibleButton" and prop.get("name") == "text":
                prop.set("name", "title")
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root)


def main(uiPath, statePath, outPath):
    app = QApplication(sys.argv[:1])
    state = json.load(open(statePath, encoding="utf-8"))
    data = QByteArray(plainQtUi(uiPath))  # kept referenced: QBuffer does not own it
    buffer = QBuffer(data)
    buffer.open(QIODevice.ReadOnly)
    panel = QUiLoader().load(buffer)
    for name, value in state.get("widgets", {}).items():
        widget = panel.findChild(object, name)
        if isinstance(widget, QComboBox):
            widget.clear()
            widget.addItems(value if isinstance(value, list) else [value])
        elif isinstance(widget, QListWidget):  # a list (first item current) or {"items": [...], "current": i}
            items = value["items"] if isinstance(value, dict) else value
            widget.addItems(items)
            widget.setCurrentRow(value.get("current", 0) if isinstance(value, dict) else 0)
        elif isinstance(widget, QPlainTextEdit):
            widget.setPlainText("\n".join(value))
        elif isinstance(widget, QTableWidget):  # {"header": [...], "rows": [[...], ...]}
            widget.setColumnCount(len(value["header"]))
            widget.setHorizontalHeaderLabels(value["header"])
            widget.setRowCount(len(value["rows"]))
            for row, cells in enumerate(value["rows"]):
                for column, text in enumerate(cells):
                    widget.setItem(row, column, QTableWidgetItem(text))
            widget.resizeColumnsToContents()
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, (QLabel, QLineEdit)):
            widget.setText(value)
        else:
            widget.setValue(value)
    panel.resize(*state.get("size", [420, 900]))
    panel.grab().save(outPath)
    app.quit()


if __name__ == "__main__":
    main(*sys.argv[1:4])
