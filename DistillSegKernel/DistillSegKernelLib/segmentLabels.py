"""Segmentation nodes <-> multi-label maps with a label table (value, name, colour, terminology).

Label values are kept, never renumbered: each segment written by a model carries the tag ``OneShotSeg.LabelValue``
so the same structure keeps the same value (and segment) across models, model versions and edits. Segments
without the tag (painted by hand) get the next free values when a segmentation becomes an atlas.

Import goes through a labelmap node with a colour table holding the model's names, colours and terminology, and
``ImportLabelmapToSegmentationNode`` with an explicit value -> segment ID list, so an existing segmentation is
updated in place: a structure's segment is found by its tag, else by its name, else created.

A new segmentation joins its volume's study (and patient) in the Subject Hierarchy, as TotalSegmentator's do: it
refers to that volume's grid, so Slicer's *Export to DICOM* writes a DICOM SEG that references the source series.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from distillseg.contract.labels import LabelEntry, LabelTable

from .volumeFiles import labelmapNodeFromArray, writeVolumeFile

LABEL_VALUE_TAG = "OneShotSeg.LabelValue"
MAX_LABEL_VALUE = 65535


class SegmentationLabelError(Exception):
    """A segmentation that cannot become a label map (or the reverse), as one sentence."""


def segmentIds(segmentationNode) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentationNode.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def taggedLabelValue(segment) -> int | None:
    """The label value stored on a segment by an earlier import, or None."""
    value = vtk.reference("")
    if not segment.GetTag(LABEL_VALUE_TAG, value):
        return None
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if 0 < number <= MAX_LABEL_VALUE else None


def _rgb255(color) -> tuple[int, int, int]:
    return tuple(int(round(min(max(c, 0.0), 1.0) * 255)) for c in color[:3])


def labelTableFromSegmentation(segmentationNode, ids: list[str] | None = None) -> tuple[LabelTable, list[int]]:
    """The label table of a segmentation's segments and the value of each segment (in ``ids`` order).

    Tagged segments keep their value; the others get the next free values in segment order. Two segments with
    the same name are refused, since names are how structures are matched later.
    """
    segmentation = segmentationNode.GetSegmentation()
    ids = segmentIds(segmentationNode) if ids is None else list(ids)
    if not ids:
        raise SegmentationLabelError(f"Segmentation '{segmentationNode.GetName()}' has no segments.")
    seenNames: dict[str, str] = {}
    values: list[int | None] = []
    for segmentId in ids:
        segment = segmentation.GetSegment(segmentId)
        key = segment.GetName().strip().lower()
        if key in seenNames:
            raise SegmentationLabelError(
                f"Segmentation '{segmentationNode.GetName()}' has two segments named '{segment.GetName()}'; "
                "give each structure its own name.")
        seenNames[key] = segmentId
        value = taggedLabelValue(segment)
        values.append(None if value in values else value)
    nextValue = max([v for v in values if v is not None], default=0) + 1
    for index, value in enumerate(values):
        if value is None:
            values[index] = nextValue
            nextValue += 1
    entries = []
    for segmentId, value in zip(ids, values):
        segment = segmentation.GetSegment(segmentId)
        terminology = segment.GetTerminology() if hasattr(segment, "GetTerminology") else None
        entries.append(LabelEntry(value, segment.GetName(), _rgb255(segment.GetColor()), terminology or None))
    return LabelTable(entries), values


def mergedLabelArray(segmentationNode, referenceVolumeNode, ids: list[str], values: list[int]) -> np.ndarray:
    """All ``ids`` segments merged into one (K, J, I) label array on the reference volume's grid, with ``values``."""
    idArray = vtk.vtkStringArray()
    valueArray = vtk.vtkIntArray()
    for segmentId, value in zip(ids, values):
        idArray.InsertNextValue(segmentId)
        valueArray.InsertNextValue(int(value))
    merged = slicer.vtkOrientedImageData()
    slicer.vtkSlicerSegmentationsModuleLogic.GenerateMergedLabelmapInReferenceGeometry(
        segmentationNode, referenceVolumeNode, idArray, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY, merged,
        valueArray)
    dims = merged.GetDimensions()
    scalars = numpy_support.vtk_to_numpy(merged.GetPointData().GetScalars())
    return scalars.reshape(dims[2], dims[1], dims[0]).copy()


def colorTableFromLabelTable(scene, table: LabelTable, name: str = "OneShotSeg labels"):
    """A user colour table: entry ``value`` = the structure's name, colour and (where Slicer supports it) terminology."""
    colorTable = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    colorTable.SetTypeToUser()
    colorTable.SetNumberOfColors(max(table.values, default=0) + 1)
    colorTable.SetColor(0, "background", 0.0, 0.0, 0.0, 0.0)
    for entry in table.entries:
        red, green, blue = (c / 255.0 for c in entry.color)
        colorTable.SetColor(entry.value, entry.name, red, green, blue, 1.0)
        if entry.terminology and hasattr(colorTable, "SetTerminologyFromString"):
            colorTable.SetTerminologyFromString(entry.value, entry.terminology)
    return colorTable


def _findSegment(segmentationNode, entry: LabelEntry, taken: set[str]) -> str | None:
    """The segment that already holds this structure: the one tagged with its value, else the one with its name."""
    segmentation = segmentationNode.GetSegmentation()
    ids = [i for i in segmentIds(segmentationNode) if i not in taken]
    for segmentId in ids:
        if taggedLabelValue(segmentation.GetSegment(segmentId)) == entry.value:
            return segmentId
    for segmentId in ids:
        if segmentation.GetSegment(segmentId).GetName().strip().lower() == entry.name.strip().lower():
            return segmentId
    return None


def importLabelmap(labelmapNode, table: LabelTable, segmentationNode) -> dict[int, str]:
    """Write a label map into ``segmentationNode`` in place; returns label value -> segment ID.

    Existing segments of the same structures are replaced (their name and colour stay as the user left them);
    missing structures become new segments with the table's name, colour and terminology. Values present in the
    label map but absent from the table become ``Label N`` segments. Other segments are untouched.
    """
    scene = labelmapNode.GetScene()
    array = slicer.util.arrayFromVolume(labelmapNode)
    present = [int(v) for v in np.unique(array) if v != 0]
    if present and (min(present) < 0 or max(present) > MAX_LABEL_VALUE):
        raise SegmentationLabelError(f"Label map '{labelmapNode.GetName()}' has label values outside 1..{MAX_LABEL_VALUE}.")
    table = table.restricted_to(sorted(set(table.values) | set(present)))
    colorTable = colorTableFromLabelTable(scene, table)
    labelmapNode.CreateDefaultDisplayNodes()
    labelmapNode.GetDisplayNode().SetAndObserveColorNodeID(colorTable.GetID())
    segmentation = segmentationNode.GetSegmentation()
    valueToId: dict[int, str] = {}
    try:
        for entry in table.entries:
            segmentId = _findSegment(segmentationNode, entry, set(valueToId.values()))
            if segmentId is None:
                segmentId = segmentation.GenerateUniqueSegmentID(f"Label_{entry.value}")
                segmentation.AddEmptySegment(segmentId, entry.name, [c / 255.0 for c in entry.color])
                if entry.terminology and hasattr(segmentation.GetSegment(segmentId), "SetTerminology"):
                    segmentation.GetSegment(segmentId).SetTerminology(entry.terminology)
            segmentation.GetSegment(segmentId).SetTag(LABEL_VALUE_TAG, str(entry.value))
            valueToId[entry.value] = segmentId
        # The update overload maps label value v to the (v-1)-th ID; empty IDs skip values no structure uses.
        updated = vtk.vtkStringArray()
        for value in range(1, max(table.values, default=0) + 1):
            updated.InsertNextValue(valueToId.get(value, ""))
        if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(
                labelmapNode, segmentationNode, updated):
            raise SegmentationLabelError(
                f"The label map could not be written into segmentation '{segmentationNode.GetName()}'.")
    finally:
        scene.RemoveNode(colorTable)
    return valueToId


def newSegmentationFor(volumeNode, name: str | None = None):
    """An empty segmentation node on ``volumeNode``'s geometry (and parent transform), with display nodes, beside
    the volume in the Subject Hierarchy."""
    scene = volumeNode.GetScene()
    segmentationNode = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or f"{volumeNode.GetName()} segmentation")
    segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    placeBeside(segmentationNode, volumeNode)
    return segmentationNode


def placeBeside(node, referenceNode) -> None:
    """Put ``node``'s Subject Hierarchy item under the parent of ``referenceNode``'s (its study), when the reference
    has one. Slicer gives every new data node an item at the scene level (``qSlicerSubjectHierarchyPluginLogic``);
    without Slicer's GUI there is none, and it is made here."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(node.GetScene())
    referenceItem = hierarchy.GetItemByDataNode(referenceNode)
    if not referenceItem:
        return
    parent = hierarchy.GetItemParent(referenceItem)
    item = hierarchy.GetItemByDataNode(node)
    if item:
        hierarchy.SetItemParent(item, parent)
    else:
        hierarchy.CreateItem(parent, node)


def writeLabelFiles(segmentationNode, referenceVolumeNode, labelsPath, tablePath, ids: list[str] | None = None) -> LabelTable:
    """Write the segments as one label map on the reference volume's grid (``labelsPath``, e.g. ``.nrrd``) and
    their label table as JSON (``tablePath``, the engine's ``--label-names`` format); returns the table.

    Refuses a segmentation whose segments hold no voxel inside the reference volume.
    """
    ids = segmentIds(segmentationNode) if ids is None else list(ids)
    table, values = labelTableFromSegmentation(segmentationNode, ids)
    labels = mergedLabelArray(segmentationNode, referenceVolumeNode, ids, values)
    if not labels.any():
        raise SegmentationLabelError(
            f"Segmentation '{segmentationNode.GetName()}' has no painted voxel inside volume "
            f"'{referenceVolumeNode.GetName()}'; paint the structures on this volume first.")
    labelmapNode = labelmapNodeFromArray(labels.astype(np.uint16 if labels.max() > 255 else np.uint8),
                                         referenceVolumeNode, "atlas labels")
    try:
        writeVolumeFile(labelmapNode, labelsPath)
    finally:
        referenceVolumeNode.GetScene().RemoveNode(labelmapNode)
    Path(tablePath).write_text(json.dumps(table.to_json(), indent=1), encoding="utf-8")
    return table
