"""The one question before the engine's Python packages are installed: from the internet, from a folder of wheels
downloaded beforehand (hospitals without internet; the README gives the ``pip download`` recipe), or not at all.
What is missing and how it is installed is ``DistillSegKernelLib.dependencies``; this is only the dialog."""

import qt

import slicer
from slicer.i18n import tr as _


def askToInstall(text: str, windowTitle: str):
    """True: install from the internet; a folder path: install from that folder of wheels; False: do not."""
    box = qt.QMessageBox(slicer.util.mainWindow())
    box.setWindowTitle(windowTitle)
    box.setIcon(qt.QMessageBox.Question)
    box.setText(text)
    online = box.addButton(_("Install"), qt.QMessageBox.AcceptRole)
    offline = box.addButton(_("Install from a folder of wheels..."), qt.QMessageBox.ActionRole)
    box.addButton(qt.QMessageBox.Cancel)
    box.exec_()
    if box.clickedButton() == online:
        return True
    if box.clickedButton() == offline:
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder of downloaded wheels"))
        return folder or False
    return False
