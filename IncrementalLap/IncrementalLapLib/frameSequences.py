"""Frames as a Slicer sequence (an image sequence or the frames of a video), and the annotated frames of a
sequence browser that plays a segmentation sequence along with them.

A frame sequence is a ``vtkMRMLSequenceNode`` whose data nodes are one-slice RGB vector volumes, shown through a
``vtkMRMLSequenceBrowserNode``. How segmentations are recorded per frame into a segmentation sequence in the same
browser, and how a proxy node is resolved to the item on screen, is the kernel's ``sequenceBrowsers`` (OneShotSeg
records the time points of a 4-D scan the same way).
"""

from __future__ import annotations

import os
from pathlib import Path

from DistillSegKernelLib import segmentLabels, sequenceBrowsers

from . import frameVolumes

FRAME_INDEX_NAME = "frame"


class FrameSequenceError(Exception):
    """A sequence that cannot be segmented or collected as frames, as one sentence."""


def addFrameSequence(scene, frameNodes: list, name: str, sequencesLogic=None, removeFrameNodes: bool = True):
    """A sequence of the given frame nodes (index value = position 0, 1, …) and a browser showing it.

    The sequence keeps copies; ``removeFrameNodes`` removes the originals from the scene. The sequence node carries
    the patient and synthetic tags of its first frame. Returns ``(sequenceNode, browserNode)``.
    """
    if not frameNodes:
        raise FrameSequenceError(f"Sequence '{name}' would hold no frame.")
    sequenceNode = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    sequenceNode.SetIndexName(FRAME_INDEX_NAME)
    sequenceNode.SetIndexUnit("")
    for index, frameNode in enumerate(frameNodes):
        frameVolumes.checkFrame(frameNode)  # refuse non-frames before anything is recorded
        sequenceNode.SetDataNodeAtValue(frameNode, str(index))
    for attribute in (frameVolumes.PATIENT_ATTRIBUTE, frameVolumes.SYNTHETIC_ATTRIBUTE):
        if frameNodes[0].GetAttribute(attribute):
            sequenceNode.SetAttribute(attribute, frameNodes[0].GetAttribute(attribute))
    if removeFrameNodes:
        for frameNode in frameNodes:
            scene.RemoveNode(frameNode)
    browserNode = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
    browserNode.SetAndObserveMasterSequenceNodeID(sequenceNode.GetID())
    sequenceBrowsers.updateProxies(browserNode, sequencesLogic)
    return sequenceNode, browserNode


def loadFrameFolderAsSequence(folder: str | os.PathLike, scene, sequencesLogic=None, patient: str | None = None):
    """The frames of a folder (name order) as one sequence with a browser; returns ``(sequenceNode, browserNode)``."""
    folder = Path(folder)
    nodes = frameVolumes.loadFrameFolder(folder, scene, patient)
    return addFrameSequence(scene, nodes, folder.name, sequencesLogic)


def masterFrameSequence(browserNode):
    """The browser's frame sequence (its master sequence), checked to hold RGB frames."""
    sequenceNode = browserNode.GetMasterSequenceNode() if browserNode is not None else None
    if sequenceNode is None or sequenceNode.GetNumberOfDataNodes() == 0:
        raise FrameSequenceError("Select a sequence browser that plays a sequence of frames.")
    if not frameVolumes.isFrame(sequenceNode.GetNthDataNode(0)):
        raise FrameSequenceError(f"Sequence '{sequenceNode.GetName()}' does not hold RGB frames (one-slice colour "
                                 "volumes).")
    return sequenceNode


def annotatedSequenceItems(browserNode, segmentationSequence=None) -> list[tuple[object, object, str]]:
    """``(frame node, segmentation node, index value)`` for every frame of the browser's frame sequence that has a
    segmentation with at least one segment in the segmentation sequence (default: the one the browser plays)."""
    frameSequence = masterFrameSequence(browserNode)
    segmentationSequence = segmentationSequence or sequenceBrowsers.findSegmentationSequence(browserNode)
    if segmentationSequence is None:
        raise FrameSequenceError(f"Sequence browser '{browserNode.GetName()}' plays no segmentation sequence; "
                                 "record the annotations into one first.")
    items = []
    for indexValue, frameNode in sequenceBrowsers.itemsOfSequence(frameSequence):
        segmentationNode = segmentationSequence.GetDataNodeAtValue(indexValue, True)
        if segmentationNode is not None and segmentLabels.segmentIds(segmentationNode):
            items.append((frameNode, segmentationNode, indexValue))
    return items
