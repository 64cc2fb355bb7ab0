"""What a module of the extension tells Slicer about itself: its own title, help, dependencies and acknowledgement,
with what all of them share (the category and the contributors) set here once."""

from slicer.i18n import tr as _
from slicer.i18n import translate

CONTRIBUTORS = ["OneShotSeg developers"]


def describeModule(parent, title: str, helpText: str, dependencies: list[str], acknowledgementText: str = "",
                   hidden: bool = False) -> None:
    """Fill a ``ScriptedLoadableModule``'s ``parent`` (texts already translated with ``_()`` by the caller)."""
    parent.title = title
    parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
    parent.dependencies = list(dependencies)
    parent.contributors = list(CONTRIBUTORS)
    parent.hidden = hidden
    parent.helpText = helpText
    parent.acknowledgementText = acknowledgementText or _("Part of the OneShotSeg extension.")
