"""Frames as a Slicer sequence (an image sequence or the frames of a video), and segmentations recorded per frame
into a segmentation sequence that plays along with it.

A frame sequence is a ``vtkMRMLSequenceNode`` whose data nodes are one-slice RGB vector volumes, shown through a
``vtkMRMLSequenceBrowserNode`` (its proxy node is the frame on screen). Segmenting "every frame" makes one
segmentation per frame, all with the same segment IDs for the same structures, stored in a second sequence at the
same index values and synchronised in the same browser, so scrubbing the video shows each frame's segmentation.
The browser saves what is painted on that segmentation's proxy node back into the sequence (``SetSaveChanges``;
off by default in ``vtkMRMLSequenceBrowserNode.cxx``, and then a frame change throws the user's corrections away),
and a frame shown without a segmentation gets an empty one (``MissingItemCreateFromDefault``; the default mode,
``vtkSlicerSequencesLogic::UpdateProxyNodesFromSequences``, copies the previous frame's segmentation there).

A proxy node is one node whose content changes with the browser's frame, so it never stands for one frame:
``browserItem`` resolves it to the sequence item on screen.

Data nodes of a sequence live in the sequence's own scene, not in the main one; helpers here take the main scene
explicitly where nodes are made. ``sequencesLogic`` (``slicer.modules.sequences.logic()`` in Slicer, a
``vtkSlicerSequencesLogic`` in tests) updates the browser's proxy nodes; without it they update on the next
browser change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import vtk

from DistillSegKernelLib import segmentLabels

from . import frameVolumes

FRAME_INDEX_NAME = "frame"


class FrameSequenceError(Exception):
    """A sequence that cannot be segmented or collected as frames, as one sentence."""


def _updateProxies(browserNode, sequencesLogic) -> None:
    if sequencesLogic is not None:
        sequencesLogic.UpdateProxyNodesFromSequences(browserNode)


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
    _updateProxies(browserNode, sequencesLogic)
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


def framesOfSequence(sequenceNode) -> list[tuple[str, object]]:
    """``(index value, frame node)`` of every item, in sequence order."""
    return [(sequenceNode.GetNthIndexValue(n), sequenceNode.GetNthDataNode(n))
            for n in range(sequenceNode.GetNumberOfDataNodes())]


def segmentationForFrame(scene, frameNode, name: str):
    """An empty segmentation node in ``scene`` on the geometry of ``frameNode`` (which may live in a sequence)."""
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(frameNode)
    return segmentationNode


def recordSegmentationSequence(scene, browserNode, segmentationsByIndex: dict[str, object], name: str,
                               sequencesLogic=None, segmentationSequence=None):
    """Store one segmentation per frame index in a segmentation sequence synchronised with ``browserNode``.

    ``segmentationsByIndex``: index value -> segmentation node (copied into the sequence, then removed from the
    scene). An existing ``segmentationSequence`` is updated in place (items at the same index are replaced).
    """
    frameSequence = masterFrameSequence(browserNode)
    if segmentationSequence is None:
        segmentationSequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
        segmentationSequence.SetIndexName(frameSequence.GetIndexName())
        segmentationSequence.SetIndexUnit(frameSequence.GetIndexUnit())
        segmentationSequence.SetIndexType(frameSequence.GetIndexType())
    for indexValue, segmentationNode in segmentationsByIndex.items():
        segmentationSequence.SetDataNodeAtValue(segmentationNode, indexValue)
        scene.RemoveNode(segmentationNode)
    if not browserNode.IsSynchronizedSequenceNodeID(segmentationSequence.GetID()):
        browserNode.AddSynchronizedSequenceNodeID(segmentationSequence.GetID())
    # Corrections painted on the proxy are kept; a frame without a segmentation gets an empty one when shown (the
    # default mode copies the previous frame's segmentation there, which would pass for an annotation of it).
    browserNode.SetMissingItemMode(segmentationSequence, browserNode.MissingItemCreateFromDefault)
    browserNode.SetSaveChanges(segmentationSequence, True)  # after the mode: setting it updates the proxies
    _updateProxies(browserNode, sequencesLogic)
    return segmentationSequence


def annotatedSequenceItems(browserNode, segmentationSequence=None) -> list[tuple[object, object, str]]:
    """``(frame node, segmentation node, index value)`` for every frame of the browser's frame sequence that has a
    segmentation with at least one segment in the segmentation sequence (default: the one the browser plays)."""
    frameSequence = masterFrameSequence(browserNode)
    segmentationSequence = segmentationSequence or findSegmentationSequence(browserNode)
    if segmentationSequence is None:
        raise FrameSequenceError(f"Sequence browser '{browserNode.GetName()}' plays no segmentation sequence; "
                                 "record the annotations into one first.")
    items = []
    for indexValue, frameNode in framesOfSequence(frameSequence):
        segmentationNode = segmentationSequence.GetDataNodeAtValue(indexValue, True)
        if segmentationNode is not None and segmentLabels.segmentIds(segmentationNode):
            items.append((frameNode, segmentationNode, indexValue))
    return items


def findSegmentationSequence(browserNode):
    """The first segmentation sequence the browser plays along with its frames, or None."""
    for sequenceNode in synchronizedSequences(browserNode):
        if sequenceNode.GetDataNodeClassName() == "vtkMRMLSegmentationNode":
            return sequenceNode
    return None


def synchronizedSequences(browserNode) -> list:
    """The sequences the browser plays along with its master sequence (the master itself not included)."""
    scene = browserNode.GetScene()
    nodes = [scene.GetNthNodeByClass(i, "vtkMRMLSequenceNode")
             for i in range(scene.GetNumberOfNodesByClass("vtkMRMLSequenceNode"))]
    return [node for node in nodes if browserNode.IsSynchronizedSequenceNodeID(node.GetID())
            and node is not browserNode.GetMasterSequenceNode()]


@dataclass
class BrowserItem:
    """The item a sequence browser shows through a proxy node: the sequence, its index value on screen and the data
    node stored there (in the sequence's own scene)."""

    browserNode: object
    sequenceNode: object
    indexValue: str
    dataNode: object


def browserItem(node, sequencesLogic) -> BrowserItem | None:
    """The item ``node`` shows when it is the proxy node of a sequence browser (the first such browser, at its
    selected item); None for a node of its own. Browsers are found with the sequences logic's
    ``GetBrowserNodesForProxyNode`` (``vtkSlicerSequencesLogic.cxx``)."""
    if node is None or sequencesLogic is None:
        return None
    browsers = vtk.vtkCollection()
    sequencesLogic.GetBrowserNodesForProxyNode(node, browsers)
    if browsers.GetNumberOfItems() == 0:
        return None
    browserNode = browsers.GetItemAsObject(0)
    sequenceNode = browserNode.GetSequenceNode(node)
    indexValue = browserNode.GetMasterSequenceNode().GetNthIndexValue(browserNode.GetSelectedItemNumber())
    return BrowserItem(browserNode, sequenceNode, indexValue, sequenceNode.GetDataNodeAtValue(indexValue, True))
