"""Volume nodes <-> the files the engine reads and writes, with their exact geometry.

Files are written and read with Slicer's own ``vtkMRMLVolumeArchetypeStorageNode`` (NRRD, LPS header), the same
code path as File > Save, so the engine sees exactly the node's voxels and its IJK-to-RAS matrix. The node's local
geometry is used: a volume under a parent transform is written untransformed, and results are placed under the
same parent transform.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import vtk

import slicer

GEOMETRY_TOLERANCE_MM = 1e-3


class VolumeFileError(Exception):
    """A volume that cannot go to the engine, or an engine file that cannot come back, as one sentence."""


def ijkToRas(volumeNode) -> np.ndarray:
    """The node's 4x4 voxel (i, j, k) -> RAS matrix in mm."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def sameGrid(nodeA, nodeB, toleranceMm: float = GEOMETRY_TOLERANCE_MM) -> bool:
    """True when two volume nodes have the same dimensions and IJK-to-RAS matrix (to ``toleranceMm``)."""
    dimsA = nodeA.GetImageData().GetDimensions() if nodeA.GetImageData() else None
    dimsB = nodeB.GetImageData().GetDimensions() if nodeB.GetImageData() else None
    return dimsA == dimsB and np.allclose(ijkToRas(nodeA), ijkToRas(nodeB), atol=toleranceMm)


def checkScalarVolume(volumeNode, role: str = "scan") -> None:
    """Refuse nodes the 3D engine cannot use: no image, RGB/vector data, a single slice, or NaN/infinite voxels.

    Checked here rather than left to the engine, whose sentence could only name the temporary file it was given."""
    if volumeNode is None:
        raise VolumeFileError(f"No {role} is selected; load or select a volume.")
    name = volumeNode.GetName()
    if volumeNode.GetImageData() is None:
        raise VolumeFileError(f"Volume '{name}' has no image data; load or select another volume as the {role}.")
    if volumeNode.GetImageData().GetNumberOfScalarComponents() != 1:
        raise VolumeFileError(f"Volume '{name}' is an RGB/vector volume; the {role} must be a grayscale 3D scan.")
    if min(volumeNode.GetImageData().GetDimensions()) < 2:
        raise VolumeFileError(f"Volume '{name}' is a single slice; the {role} must be a 3D scan.")
    voxels = slicer.util.arrayFromVolume(volumeNode)
    if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
        raise VolumeFileError(f"Volume '{name}' contains NaN or infinite voxels; the {role} needs finite intensities.")


def writeVolumeFile(volumeNode, path: str | os.PathLike) -> Path:
    """Write the node's voxels and geometry to ``path`` (``.nrrd`` recommended); the node keeps its own storage."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = volumeNode.GetScene()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    try:
        storage.SetFileName(str(path))
        storage.SetUseCompression(1)
        if not storage.WriteData(volumeNode) or not path.is_file():
            raise VolumeFileError(f"{path}: could not write volume '{volumeNode.GetName()}' for the engine.")
    finally:
        scene.RemoveNode(storage)
    return path


def readVolumeFile(path: str | os.PathLike, scene, className: str = "vtkMRMLScalarVolumeNode",
                   name: str | None = None):
    """Read a NRRD/NIfTI file into a new node of ``className``; the node gets no storage node (it is temporary
    or is saved wherever the user chooses)."""
    path = Path(path)
    node = scene.AddNewNodeByClass(className, name or path.name.split(".")[0])
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    try:
        storage.SetFileName(str(path))
        if not path.is_file() or not storage.ReadData(node):
            scene.RemoveNode(node)
            raise VolumeFileError(f"{path}: the engine's output could not be read.")
    finally:
        scene.RemoveNode(storage)
    return node


def readLabelmapOnGrid(path: str | os.PathLike, referenceVolumeNode, name: str = "engine labels", scene=None):
    """Read the engine's label map as a labelmap node in ``scene`` (default: the reference's; a volume held in a
    sequence lives in the sequence's own scene) and check it lies exactly on ``referenceVolumeNode``'s grid."""
    scene = scene or referenceVolumeNode.GetScene()
    labelmapNode = readVolumeFile(path, scene, "vtkMRMLLabelMapVolumeNode", name)
    if not sameGrid(labelmapNode, referenceVolumeNode):
        scene.RemoveNode(labelmapNode)
        raise VolumeFileError(f"{path}: the engine's label map is not on the grid of '{referenceVolumeNode.GetName()}'.")
    labelmapNode.SetAndObserveTransformNodeID(referenceVolumeNode.GetTransformNodeID())
    return labelmapNode


def labelmapNodeFromArray(labels: np.ndarray, referenceVolumeNode, name: str = "labels"):
    """A labelmap node with ``labels`` (K, J, I array, Slicer's order) on ``referenceVolumeNode``'s grid."""
    scene = referenceVolumeNode.GetScene()
    labelmapNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    labelmapNode.CopyOrientation(referenceVolumeNode)
    slicer.util.updateVolumeFromArray(labelmapNode, np.ascontiguousarray(labels))
    labelmapNode.SetAndObserveTransformNodeID(referenceVolumeNode.GetTransformNodeID())
    return labelmapNode
