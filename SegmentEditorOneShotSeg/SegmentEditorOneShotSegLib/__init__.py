from SegmentEditorEffects.AbstractScriptedSegmentEditorEffect import *  # noqa: F401,F403 (Slicer's effect template)

from .SegmentEditorEffect import *  # noqa: F401,F403
from .SegmentEditorLapEffect import *  # noqa: F401,F403
