"""The frames the user annotated, written in the engine's DSAD per-structure layout (for ``lap learn`` and
``lap evaluate``).

An annotated frame is a segmentation node and the RGB frame it was painted on: the segmentation's reference
geometry volume (what the Segment Editor sets when a source volume is chosen), or the frame at the same index of a
sequence browser's frame sequence when the annotations were recorded into a segmentation sequence. A segmentation
whose reference is a browser's proxy frame (or that is itself a proxy) is refused: the proxy shows whichever frame
the browser is on, so the frame it was painted on cannot be told.

Layout written (read by the engine's ``distillseg.lap.dsad``)::

    <folder>/<structure>/<patient>/image<NNNN>.png + mask<NNNN>.png     (mask 0/255, that structure only)
    <folder>/SYNTHETIC_DATA.txt                                           only when a frame came from generated data

A frame goes into a structure's folder only if its segmentation has a segment of that name (an empty segment
says "not visible here", which is an annotation too). So every frame is scored only for the structures it
annotates — what ``lap evaluate`` needs when check frames are annotated for different structures — and the same
frame under several structures is the same file (the engine merges them by content). Only the structures asked
for are written: learning a new structure needs the new structures only, never the old patients' frames.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from DistillSegKernelLib import segmentLabels, sequenceBrowsers

from . import frameSequences, frameVolumes

_UNSAFE_PATIENT = re.compile(r"[^\w-]+")
RESERVED_STRUCTURE_NAMES = ("multilabel",)


class AnnotationError(Exception):
    """Annotations that cannot be used as asked, as one sentence for the user."""


@dataclass
class AnnotatedFrame:
    """One frame node with the segmentation painted on it and the patient it shows."""

    frameNode: object
    segmentationNode: object
    patient: str = "new"


@dataclass
class CollectedFrames:
    """What ``collectFrames`` wrote: the folder, the frames per structure and the pixels per structure."""

    folder: Path
    frameCounts: dict[str, int] = field(default_factory=dict)
    pixelCounts: dict[str, int] = field(default_factory=dict)
    synthetic: bool = False

    @property
    def structures(self) -> list[str]:
        return list(self.frameCounts)


def frameOfSegmentation(segmentationNode):
    """The volume a segmentation was painted on (its reference geometry node), or None."""
    role = segmentationNode.GetReferenceImageGeometryReferenceRole()
    return segmentationNode.GetNodeReference(role)


def annotatedFramesFromSegmentations(segmentationNodes, sequencesLogic=None) -> list[AnnotatedFrame]:
    """Pair each segmentation with its frame; refuses a segmentation not painted on an RGB frame, and one that
    belongs to a sequence browser (found with ``sequencesLogic``)."""
    frames = []
    for segmentationNode in segmentationNodes:
        if segmentationNode is None:
            continue
        frameNode = frameOfSegmentation(segmentationNode)
        for node in (segmentationNode, frameNode):
            item = sequenceBrowsers.browserItem(node, sequencesLogic)
            if item is not None:
                raise AnnotationError(
                    f"Segmentation '{segmentationNode.GetName()}' belongs to the frame sequence browser "
                    f"'{item.browserNode.GetName()}', whose frame on screen changes: choose that browser as the "
                    "annotated sequence instead (its segmentation sequence pairs every frame with its annotation).")
        if frameNode is None or not frameVolumes.isFrame(frameNode):
            raise AnnotationError(
                f"Segmentation '{segmentationNode.GetName()}' was not painted on an RGB frame: select the frame as "
                "the source volume in the Segment Editor when annotating it.")
        frames.append(AnnotatedFrame(frameNode, segmentationNode, frameVolumes.framePatient(frameNode)))
    return frames


def annotatedFramesFromSequence(browserNode) -> list[AnnotatedFrame]:
    """The frames of a sequence that have a segmentation in the segmentation sequence the browser plays."""
    patient = frameSequences.masterFrameSequence(browserNode).GetAttribute(frameVolumes.PATIENT_ATTRIBUTE) or "new"
    return [AnnotatedFrame(frameNode, segmentationNode, patient)
            for frameNode, segmentationNode, _ in frameSequences.annotatedSequenceItems(browserNode)]


def segmentsByName(segmentationNode) -> dict[str, str]:
    """Lower-cased, stripped segment name -> segment ID."""
    segmentation = segmentationNode.GetSegmentation()
    return {segmentation.GetSegment(i).GetName().strip().lower(): i for i in segmentLabels.segmentIds(segmentationNode)}


def structureNames(frames: list[AnnotatedFrame]) -> list[str]:
    """Every segment name of the annotated frames (first spelling kept), in order of appearance."""
    names: dict[str, str] = {}
    for frame in frames:
        segmentation = frame.segmentationNode.GetSegmentation()
        for segmentId in segmentLabels.segmentIds(frame.segmentationNode):
            name = segmentation.GetSegment(segmentId).GetName().strip()
            names.setdefault(name.lower(), name)
    return list(names.values())


def checkStructureName(name: str) -> str:
    """A structure name the engine's folder layout and option lists can carry; ``AnnotationError`` otherwise."""
    name = name.strip()
    if not name or name.startswith(".") or any(c in name for c in '/\\,:*?"<>|') or \
            name.lower() in RESERVED_STRUCTURE_NAMES:
        raise AnnotationError(f"Structure name '{name}' cannot be used: rename the segment (no '/', '\\', ',', ':' "
                              "or leading '.', not 'multilabel').")
    return name


def segmentMask(frame: AnnotatedFrame, segmentId: str) -> np.ndarray:
    """One segment as an (H, W) bool mask on the frame's grid."""
    labels = segmentLabels.mergedLabelArray(frame.segmentationNode, frame.frameNode, [segmentId], [1])
    return labels[0] > 0


def collectFrames(frames: list[AnnotatedFrame], folder: str | Path, structures: list[str] | None = None
                  ) -> CollectedFrames:
    """Write the frames and their masks of ``structures`` (default: every segment name) into ``folder``
    (replaced if it exists) in the DSAD per-structure layout."""
    if not frames:
        raise AnnotationError("No annotated frame is selected.")
    structures = [checkStructureName(s) for s in (structures or structureNames(frames))]
    folder = Path(folder)
    if folder.exists():
        shutil.rmtree(folder)
    framesFolder = folder / ".frames"  # each frame written once, then copied: identical bytes in every folder
    framesFolder.mkdir(parents=True)
    collected = CollectedFrames(folder, {s: 0 for s in structures}, {s: 0 for s in structures})
    for number, frame in enumerate(frames):
        byName = segmentsByName(frame.segmentationNode)
        wanted = [(s, byName[s.lower()]) for s in structures if s.lower() in byName]
        if not wanted:
            continue
        stem = f"{number:04d}"
        framePng = frameVolumes.writeFrameFile(frame.frameNode, framesFolder / f"image{stem}.png")
        patient = _UNSAFE_PATIENT.sub("_", frame.patient).strip("_") or "new"
        for structure, segmentId in wanted:
            mask = segmentMask(frame, segmentId)
            target = folder / structure / patient
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(framePng, target / f"image{stem}.png")
            frameVolumes.write_index_png(target / f"mask{stem}.png", mask.astype(np.uint8) * 255)
            collected.frameCounts[structure] += 1
            collected.pixelCounts[structure] += int(mask.sum())
        collected.synthetic |= frameVolumes.frameIsSynthetic(frame.frameNode)
    shutil.rmtree(framesFolder)
    if collected.synthetic:
        (folder / frameVolumes.SYNTHETIC_MARKER).write_text(
            "SYNTHETIC: frames collected from generated demo data ('distillseg lap demo-data'), not laparoscopic "
            "images.\n", encoding="utf-8")
    return collected


def requireEveryStructurePainted(collected: CollectedFrames, role: str = "learn") -> None:
    """Refuse a collection in which a structure to ``role`` has no painted pixel on any frame."""
    for structure in collected.structures:
        if collected.frameCounts[structure] == 0:
            raise AnnotationError(f"No selected segmentation has a segment named '{structure}' to {role}.")
        if collected.pixelCounts[structure] == 0:
            raise AnnotationError(f"Structure '{structure}' is not painted on any selected frame; paint it on the "
                                  f"frames where it is visible before you {role}.")
