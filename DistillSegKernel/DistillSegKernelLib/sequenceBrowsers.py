"""Segmentations recorded per item of a sequence (the frames of a video, the time points of a 4-D scan) into a
segmentation sequence that plays along with it in the same sequence browser, for both method modules.

A sequence is a ``vtkMRMLSequenceNode`` shown through a ``vtkMRMLSequenceBrowserNode`` (its proxy node is the item
on screen). Segmenting "every item" makes one segmentation per item, all with the same segment IDs for the same
structures, stored in a second sequence at the same index values and synchronised in the same browser, so
scrubbing shows each item's segmentation. The browser saves what is painted on that segmentation's proxy node back
into the sequence (``SetSaveChanges``; off by default in ``vtkMRMLSequenceBrowserNode.cxx``, and then an item change
throws the user's corrections away), and an item shown without a segmentation gets an empty one
(``MissingItemCreateFromDefault``; the default mode, ``vtkSlicerSequencesLogic::UpdateProxyNodesFromSequences``,
copies the previous item's segmentation there).

A proxy node is one node whose content changes with the browser's item, so it never stands for one item:
``browserItem`` resolves it to the sequence item on screen.

Data nodes of a sequence live in the sequence's own scene, not in the main one; helpers here take the main scene
explicitly where nodes are made. ``sequencesLogic`` (``slicer.modules.sequences.logic()`` in Slicer, a
``vtkSlicerSequencesLogic`` in tests) updates the browser's proxy nodes; without it they update on the next
browser change.
"""

from __future__ import annotations

from dataclasses import dataclass

import vtk

from .segmentLabels import segmentIds


def updateProxies(browserNode, sequencesLogic) -> None:
    """Show the browser's current items in its proxy nodes now (nothing without a sequences logic)."""
    if sequencesLogic is not None:
        sequencesLogic.UpdateProxyNodesFromSequences(browserNode)


def itemsOfSequence(sequenceNode) -> list[tuple[str, object]]:
    """``(index value, data node)`` of every item, in sequence order."""
    return [(sequenceNode.GetNthIndexValue(n), sequenceNode.GetNthDataNode(n))
            for n in range(sequenceNode.GetNumberOfDataNodes())]


def segmentationOnGrid(scene, volumeNode, name: str):
    """An empty segmentation node in ``scene`` on the geometry of ``volumeNode`` (which may live in a sequence)."""
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    return segmentationNode


def recordSegmentationSequence(scene, browserNode, segmentationsByIndex: dict[str, object], name: str,
                               sequencesLogic=None, segmentationSequence=None):
    """Store one segmentation per index value in a segmentation sequence synchronised with ``browserNode``.

    ``segmentationsByIndex``: index value of the browser's master sequence -> segmentation node (copied into the
    sequence, then removed from the scene). An existing ``segmentationSequence`` is updated in place (items at the
    same index are replaced).
    """
    masterSequence = browserNode.GetMasterSequenceNode()
    if segmentationSequence is None:
        segmentationSequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
        segmentationSequence.SetIndexName(masterSequence.GetIndexName())
        segmentationSequence.SetIndexUnit(masterSequence.GetIndexUnit())
        segmentationSequence.SetIndexType(masterSequence.GetIndexType())
    for indexValue, segmentationNode in segmentationsByIndex.items():
        segmentationSequence.SetDataNodeAtValue(segmentationNode, indexValue)
        scene.RemoveNode(segmentationNode)
    if not browserNode.IsSynchronizedSequenceNodeID(segmentationSequence.GetID()):
        browserNode.AddSynchronizedSequenceNodeID(segmentationSequence.GetID())
    # Corrections painted on the proxy are kept; an item without a segmentation gets an empty one when shown (the
    # default mode copies the previous item's segmentation there, which would pass for an annotation of it).
    browserNode.SetMissingItemMode(segmentationSequence, browserNode.MissingItemCreateFromDefault)
    browserNode.SetSaveChanges(segmentationSequence, True)  # after the mode: setting it updates the proxies
    updateProxies(browserNode, sequencesLogic)
    return segmentationSequence


def recordItemSegmentations(browserNode, items: list[tuple[str, object]], importInto, name: str,
                            sequencesLogic=None, attributes: dict[str, str] | None = None):
    """Segment items of the browser's master sequence into the segmentation sequence it plays (created and
    synchronised if there is none; items already there are updated in place, keeping their segment IDs).

    ``items``: ``(index value, data node)``; ``importInto(position, segmentationNode)`` puts the engine's result for
    ``items[position]`` into a segmentation on that item's grid; ``attributes`` are set on the segmentation
    sequence (e.g. the model that made it). Returns the segmentation sequence. Nothing is left in the scene when an
    import fails."""
    scene = browserNode.GetScene()
    existing = findSegmentationSequence(browserNode)
    byIndex = {}
    try:
        for position, (indexValue, dataNode) in enumerate(items):
            node = segmentationOnGrid(scene, dataNode, name)
            earlier = existing.GetDataNodeAtValue(indexValue, True) if existing is not None else None
            if earlier is not None and segmentIds(earlier):  # not an empty item made by scrubbing
                # The earlier segments (and IDs) first, then the model's structures over them. CopyContent, not
                # Copy: Copy also takes the item's node references (IDs of the sequence's own scene) and drops
                # the display node this node has here, which Slicer then never removes.
                node.CopyContent(earlier)
            importInto(position, node)
            byIndex[indexValue] = node
        sequenceNode = recordSegmentationSequence(scene, browserNode, byIndex, name, sequencesLogic, existing)
        for key, value in (attributes or {}).items():
            sequenceNode.SetAttribute(key, value)
        return sequenceNode
    except BaseException:
        for node in byIndex.values():
            if node.GetScene() is scene:
                scene.RemoveNode(node)
        raise


def findSegmentationSequence(browserNode):
    """The first segmentation sequence the browser plays along with its master sequence, or None."""
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
