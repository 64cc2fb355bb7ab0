"""A stand-in for the few Qt classes the extension's effect and widget code touches, so that code runs here (no Qt
in slicer-core) as Slicer runs it. PythonQt exposes Qt properties as plain attributes (``button.enabled = False``,
``comboBox.count``) and signals as objects with ``connect``/``disconnect``; the stand-in keeps exactly that shape.

Only what the code under test uses is here: a call of anything else fails (``AttributeError``) instead of passing
silently. ``QTimer`` never fires by itself: a test calls the slot its ``timeout`` is connected to (``fire()``), as
Qt's event loop would at each interval.
"""

from __future__ import annotations

import types


class Signal:
    """A Qt signal: ``connect``, ``disconnect`` (a slot, or all), ``emit``."""

    def __init__(self):
        self.slots = []

    def connect(self, slot) -> None:
        self.slots.append(slot)

    def disconnect(self, slot=None) -> None:
        if slot is None:
            self.slots.clear()
        elif slot in self.slots:
            self.slots.remove(slot)
        else:
            raise RuntimeError("disconnect: the slot is not connected")  # PythonQt raises too

    def emit(self, *args) -> None:
        for slot in list(self.slots):
            slot(*args)


class QWidget:
    """Properties are attributes; ``blockSignals`` returns the previous state, as in Qt."""

    def __init__(self, *args):
        self.enabled = True
        self.toolTip = ""
        self.objectName = ""
        self.visible = True
        self._signalsBlocked = False

    def hide(self) -> None:
        self.visible = False

    def show(self) -> None:
        self.visible = True

    def blockSignals(self, block: bool) -> bool:
        previous, self._signalsBlocked = self._signalsBlocked, bool(block)
        return previous

    def _emit(self, signal: Signal, *args) -> None:
        if not self._signalsBlocked:
            signal.emit(*args)


class QLabel(QWidget):
    def __init__(self, text: str = ""):
        super().__init__()
        self.text = text
        self.wordWrap = False


class QPushButton(QWidget):
    def __init__(self, text: str = ""):
        super().__init__()
        self.text = text
        self.clicked = Signal()


class QProgressBar(QWidget):
    def __init__(self):
        super().__init__()
        self.value = 0
        self.maximum = 100
        self.textVisible = True


class QListView:
    """A combo box's list: rows can be hidden (``setRowHidden``); Qt forgets that when the rows are replaced."""

    def __init__(self):
        self.hiddenRows: set[int] = set()

    def setRowHidden(self, row: int, hidden: bool) -> None:
        (self.hiddenRows.add if hidden else self.hiddenRows.discard)(row)


class QComboBox(QWidget):
    """Items are texts; ``currentIndex`` is -1 when empty, as in Qt."""

    def __init__(self):
        super().__init__()
        self.items: list[str] = []
        self._currentIndex = -1
        self._view = QListView()
        self.currentTextChanged = Signal()

    def view(self) -> QListView:
        return self._view

    def itemText(self, row: int) -> str:
        return self.items[row] if 0 <= row < len(self.items) else ""

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def currentIndex(self) -> int:
        return self._currentIndex

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        index = index if 0 <= index < len(self.items) else -1
        if index != self._currentIndex:
            self._currentIndex = index
            self._emit(self.currentTextChanged, self.currentText)

    @property
    def currentText(self) -> str:
        return self.items[self._currentIndex] if self._currentIndex >= 0 else ""

    def addItem(self, text: str) -> None:
        self.items.append(str(text))
        if self._currentIndex < 0:
            self.currentIndex = 0

    def clear(self) -> None:
        self.items.clear()
        self._view.hiddenRows.clear()
        self.currentIndex = -1

    def findText(self, text: str) -> int:
        return self.items.index(text) if text in self.items else -1


class QPlainTextEdit(QWidget):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def clear(self) -> None:
        self.lines.clear()

    def appendPlainText(self, text: str) -> None:
        self.lines.append(text)


class QHBoxLayout:
    def __init__(self):
        self.widgets = []

    def addWidget(self, widget, stretch: int = 0) -> None:
        self.widgets.append(widget)


class QIcon:
    def __init__(self, path: str | None = None):
        self.path = path


class QTimer:
    """``start``/``stop``/``isActive``; ``fire()`` is one tick of Qt's event loop for this timer."""

    def __init__(self):
        self.interval = 0
        self.active = False
        self.timeout = Signal()

    def setInterval(self, milliseconds: int) -> None:
        self.interval = milliseconds

    def start(self) -> None:
        self.active = True

    def stop(self) -> None:
        self.active = False

    def isActive(self) -> bool:
        return self.active

    def fire(self) -> None:
        if self.active:
            self.timeout.emit()


class Qt:
    WaitCursor = "WaitCursor"


def module() -> types.ModuleType:
    """A fresh ``qt`` module made of the classes above."""
    qt = types.ModuleType("qt")
    qt.Qt = Qt
    for cls in (Signal, QWidget, QLabel, QPushButton, QProgressBar, QListView, QComboBox, QPlainTextEdit,
                QHBoxLayout, QIcon, QTimer):
        setattr(qt, cls.__name__, cls)
    return qt
