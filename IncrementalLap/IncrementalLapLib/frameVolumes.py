"""RGB laparoscopic frames <-> one-slice vector volume nodes, and the engine's label PNGs back onto a frame's grid.

A frame is a ``vtkMRMLVectorVolumeNode`` with one slice: ``arrayFromVolume`` gives (1, H, W, 3) ``uint8``, row 0
of the picture at j = 0, column 0 at i = 0. Files are read with Pillow (slicer-core's ITK has no PNG/JPEG reader;
in Slicer this also keeps one code path), through the engine contract's ``distillseg.contract.frames`` so the module and
the engine agree on what a frame is (colour only, alpha dropped, grey refused with a sentence naming the file). The
geometry is that of Slicer's own PNG reader: spacing 1 mm, origin 0, IJK-to-RAS directions diag(-1, -1, 1) (the
identity in LPS).

The engine sees a frame as a lossless PNG of ``array[0]``; its label PNG (H, W) comes back as a labelmap node with
the frame's exact geometry (``CopyOrientation``), whatever that geometry is, so frames from any source (a file, a
video sequence, a volume under a transform) get segmentations on their own grid.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import slicer

from DistillSegKernelLib.volumeFiles import labelmapNodeFromArray

from distillseg.contract.frames import (  # noqa: F401  (write_index_png: used through this module)
    FRAME_SUFFIXES, SYNTHETIC_MARKER, read_frame, read_mask, write_frame, write_index_png)

# Node attributes a loaded frame carries (kept in the scene file).
SOURCE_FILE_ATTRIBUTE = "IncrementalLap.SourceFile"
PATIENT_ATTRIBUTE = "IncrementalLap.Patient"
SYNTHETIC_ATTRIBUTE = "IncrementalLap.Synthetic"
SLICER_PNG_DIRECTIONS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


class FrameError(Exception):
    """A node that is not a usable RGB frame, as one sentence naming it."""


def isSyntheticFolder(path: str | os.PathLike, levels: int = 4) -> bool:
    """True when ``path`` or one of its ``levels`` parent folders holds the demo-data marker."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent
    for candidate in [folder, *folder.parents][: levels + 1]:
        if (candidate / SYNTHETIC_MARKER).is_file():
            return True
    return False


def addFrameNode(scene, rgb: np.ndarray, name: str):
    """A vector volume node holding ``rgb`` ((H, W, 3) uint8) with the geometry of Slicer's PNG reader."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"a frame is an (H, W, 3) uint8 array, not {rgb.shape} {rgb.dtype}")
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(rgb[None]))
    node.SetSpacing(1.0, 1.0, 1.0)
    node.SetOrigin(0.0, 0.0, 0.0)
    node.SetIJKToRASDirections(*SLICER_PNG_DIRECTIONS)
    node.CreateDefaultDisplayNodes()
    return node


def loadFrame(path: str | os.PathLike, scene, name: str | None = None, patient: str | None = None):
    """Read a PNG/JPEG/TIFF colour frame into a new vector volume node.

    The node remembers its file, its patient (``patient``, else the name of the folder it is in) and whether it
    comes from a folder of generated (synthetic) frames.
    """
    path = Path(path)
    node = addFrameNode(scene, read_frame(path), name or path.stem)
    node.SetAttribute(SOURCE_FILE_ATTRIBUTE, str(path))
    node.SetAttribute(PATIENT_ATTRIBUTE, patient or path.parent.name)
    if isSyntheticFolder(path):
        node.SetAttribute(SYNTHETIC_ATTRIBUTE, "1")
    return node


def frameFilesIn(folder: str | os.PathLike) -> list[Path]:
    """The PNG/JPEG/TIFF frames of a folder (not its sub-folders, no hidden files), sorted by name.

    Files named ``mask*`` are skipped: in the DSAD layout the masks lie beside their frames.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameError(f"{folder}: the folder of frames does not exist.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES
                   and not p.name.startswith(".") and not p.name.lower().startswith("mask"))
    if not files:
        raise FrameError(f"{folder}: the folder holds no PNG/JPEG/TIFF frames.")
    return files


def loadFrameFolder(folder: str | os.PathLike, scene, patient: str | None = None) -> list:
    """Every frame of a folder as its own vector volume node, in name order."""
    return [loadFrame(path, scene, patient=patient) for path in frameFilesIn(folder)]


def checkFrame(volumeNode) -> None:
    """``FrameError`` naming the node unless it is a one-slice volume with 3 or 4 channels (pixels not read)."""
    if volumeNode is None or volumeNode.GetImageData() is None:
        raise FrameError("No frame is selected (or it has no image data).")
    name = volumeNode.GetName()
    components = volumeNode.GetImageData().GetNumberOfScalarComponents()
    if components not in (3, 4):
        raise FrameError(f"Volume '{name}' has {components} channel(s); IncrementalLap needs an RGB colour frame.")
    slices = volumeNode.GetImageData().GetDimensions()[2]
    if slices != 1:
        raise FrameError(f"Volume '{name}' has {slices} slices; a frame is a single 2D picture "
                         "(load a video as a sequence of frames).")


def frameArray(volumeNode) -> np.ndarray:
    """The frame's pixels as an (H, W, 3) ``uint8`` copy (alpha dropped); ``FrameError`` for anything else.

    Reads the node itself, all channels: the Segment Editor gives effects only channel 0 of an RGB source volume.
    """
    checkFrame(volumeNode)
    name = volumeNode.GetName()
    rgb = slicer.util.arrayFromVolume(volumeNode)[0, :, :, :3]  # (K, J, I, C), K = 1
    if rgb.dtype != np.uint8:
        if not np.issubdtype(rgb.dtype, np.integer) or rgb.min() < 0 or rgb.max() > 255:
            raise FrameError(f"Volume '{name}' holds {rgb.dtype} values outside 0..255; a frame has 8-bit colours.")
        rgb = rgb.astype(np.uint8)
    return np.array(rgb, dtype=np.uint8, copy=True)


def isFrame(volumeNode) -> bool:
    """True for a one-slice volume with 3 or 4 channels (what ``frameArray`` accepts, without reading pixels)."""
    try:
        checkFrame(volumeNode)
    except FrameError:
        return False
    return True


def writeFrameFile(volumeNode, path: str | os.PathLike) -> Path:
    """The frame as a lossless PNG for the engine (written atomically by the engine's writer)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: frames go to the engine as PNG (lossless)")
    return write_frame(path, frameArray(volumeNode))


def frameIsSynthetic(volumeNode) -> bool:
    return volumeNode is not None and volumeNode.GetAttribute(SYNTHETIC_ATTRIBUTE) == "1"


def framePatient(volumeNode, default: str = "new") -> str:
    return (volumeNode.GetAttribute(PATIENT_ATTRIBUTE) if volumeNode is not None else None) or default


def readLabelsOnFrame(path: str | os.PathLike, frameNode, name: str = "engine labels", scene=None):
    """The engine's index PNG (H, W; value = class) as a labelmap node on ``frameNode``'s exact grid."""
    return labelmapOnFrame(readLabelArray(path, frameNode), frameNode, name, scene)


def readLabelArray(path: str | os.PathLike, frameNode) -> np.ndarray:
    """The engine's index PNG as a (H, W) array, checked against the frame's size."""
    labels = read_mask(path)
    rows, columns = slicer.util.arrayFromVolume(frameNode).shape[1:3]
    if labels.shape != (rows, columns):
        raise FrameError(f"{path}: the engine's label map is {labels.shape[1]}x{labels.shape[0]} pixels but frame "
                         f"'{frameNode.GetName()}' is {columns}x{rows}.")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 65535:
        raise FrameError(f"{path}: label values outside 0..65535.")
    return labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8)


def labelmapOnFrame(labels: np.ndarray, frameNode, name: str = "engine labels", scene=None):
    """A labelmap node with ``labels`` ((H, W) class values) on ``frameNode``'s grid, in ``scene`` (default: the
    frame's). Frames held inside a sequence have no scene of their own: their geometry is copied into ``scene``."""
    scene = scene or frameNode.GetScene()
    if scene is frameNode.GetScene():
        return labelmapNodeFromArray(labels[None], frameNode, name)
    labelmapNode = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    labelmapNode.CopyOrientation(frameNode)
    slicer.util.updateVolumeFromArray(labelmapNode, np.ascontiguousarray(labels[None]))
    return labelmapNode
