"""Segment frames with an IncrementalLap model: the current frame, a selection of frames, or every frame of a
sequence (into a segmentation sequence).

The frames are written as PNGs into a temporary folder, one ``lap segment`` request to the engine worker
(``DistillSegKernelLib.engineWorker``: the model stays loaded between segmentations) segments the whole folder,
and each index PNG comes back onto its frame's exact grid. The frames are written as the job is polled, a slice of time at
each poll (``jobChain.JobChain``'s preparation): writing every frame of a long video at once would freeze Slicer
before the job even starts. Segments get the model's names and colours; a structure's
segment ID follows its class value (``Label_<value>`` in a new segmentation, the tagged segment in an existing one,
see ``DistillSegKernelLib.segmentLabels``), and class values are never renumbered by the engine, so a later model version
updates the same segments and only adds segments for the structures it learned.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from DistillSegKernelLib import engineWorker, segmentLabels, sequenceBrowsers
from DistillSegKernelLib.jobChain import JobChain
from DistillSegKernelLib.modelStore import ModelInfo

from . import frameSequences, frameVolumes
from .lapJobs import METHOD, segmentArguments

SEGMENTED_FRAME_ATTRIBUTE = "IncrementalLap.SegmentedFrame"  # on segmentations this module made: the frame's ID
MODEL_ATTRIBUTE = "IncrementalLap.Model"


class FrameSegmentationError(Exception):
    """Frames that cannot be segmented as asked, as one sentence."""


@dataclass
class FrameSegmentationJob:
    """Frames being segmented by one model: ``frames`` are ``(key, frame node)`` pairs (key = the sequence index
    value, or the position in a selection), written as ``<folder>/frames/frame<NNNN>.png``. With a
    ``browserNode`` the keys are index values of its frame sequence and the result goes into its segmentation
    sequence (``finishIntoSequence``)."""

    model: ModelInfo
    frames: list[tuple[str, object]]
    folder: Path
    job: JobChain
    browserNode: object = None
    frameFiles: list[Path] = field(default_factory=list)

    def labelFile(self, position: int) -> Path:
        return self.folder / "labels" / f"{self.frameFiles[position].stem}.png"


def _writeFrames(frames: list[tuple[str, object]], files: list[Path]) -> Iterator[tuple[int, int]]:
    """Write each frame's PNG for the engine; yields ``(written, total)`` after each."""
    for position, ((_, node), path) in enumerate(zip(frames, files), 1):
        frameVolumes.writeFrameFile(node, path)
        yield position, len(files)


def startFrameSegmentation(model: ModelInfo, frames: list[tuple[str, object]], folder: str | Path,
                           device: str = "auto", environment: dict | None = None, onEvent=None,
                           browserNode=None) -> FrameSegmentationJob:
    """Start segmenting the frames; returns at once (the frames are written as the job is polled, then
    ``distillseg lap segment`` runs on them in the engine worker)."""
    if model.method != METHOD:
        raise FrameSegmentationError(f"Model '{model.name}' is not an IncrementalLap model.")
    if not frames:
        raise FrameSegmentationError("Select at least one frame to segment.")
    for _, node in frames:
        frameVolumes.checkFrame(node)  # refused now, with a sentence, rather than when its turn comes
    folder = Path(folder)
    framesFolder = folder / "frames"
    framesFolder.mkdir(parents=True, exist_ok=True)
    files = [framesFolder / f"frame{position:05d}.png" for position in range(len(frames))]
    arguments = segmentArguments(model.path, framesFolder, folder / "labels", device)
    job = JobChain([("segmenting", arguments)], environment, onEvent,
                   preparation=("writing frames", _writeFrames(list(frames), files)),
                   startStep=engineWorker.startRequest).start()
    return FrameSegmentationJob(model, list(frames), folder, job, browserNode, files)


def startSequenceSegmentation(model: ModelInfo, browserNode, folder: str | Path, device: str = "auto",
                              environment: dict | None = None, onEvent=None) -> FrameSegmentationJob:
    """Every frame of the browser's frame sequence."""
    frames = sequenceBrowsers.itemsOfSequence(frameSequences.masterFrameSequence(browserNode))
    return startFrameSegmentation(model, frames, folder, device, environment, onEvent, browserNode)


def segmentationMadeFor(frameNode):
    """The segmentation this module made earlier for ``frameNode`` (to update in place), or None."""
    scene = frameNode.GetScene()
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")):
        node = scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
        if node.GetAttribute(SEGMENTED_FRAME_ATTRIBUTE) == frameNode.GetID():
            return node
    return None


def importFrameLabels(segmentation: FrameSegmentationJob, position: int, segmentationNode, scene) -> dict[int, str]:
    """Write frame ``position``'s engine labels into ``segmentationNode``; returns class value -> segment ID."""
    frameNode = segmentation.frames[position][1]
    labelmapNode = frameVolumes.readLabelsOnFrame(segmentation.labelFile(position), frameNode, scene=scene)
    try:
        return segmentLabels.importLabelmap(labelmapNode, segmentation.model.labels, segmentationNode)
    finally:
        scene.RemoveNode(labelmapNode)


def discard(segmentation: FrameSegmentationJob) -> None:
    """Remove the temporary files of a failed or cancelled segmentation."""
    shutil.rmtree(segmentation.folder, ignore_errors=True)


def finishIntoSegmentations(segmentation: FrameSegmentationJob, targets: list | None = None) -> list:
    """One segmentation per frame: ``targets[i]`` if given (updated in place), else the one made earlier for that
    frame, else a new one named after the frame and the model. The temporary folder is removed."""
    nodes = []
    try:
        for position, (_, frameNode) in enumerate(segmentation.frames):
            scene = frameNode.GetScene()
            node = (targets[position] if targets and position < len(targets) else None) or \
                segmentationMadeFor(frameNode)
            if node is None:
                node = segmentLabels.newSegmentationFor(frameNode, f"{frameNode.GetName()} segmentation")
                node.SetAttribute(SEGMENTED_FRAME_ATTRIBUTE, frameNode.GetID())
            node.SetAttribute(MODEL_ATTRIBUTE, segmentation.model.name)
            importFrameLabels(segmentation, position, node, scene)
            nodes.append(node)
    finally:
        shutil.rmtree(segmentation.folder, ignore_errors=True)
    return nodes


def finishIntoSequence(segmentation: FrameSegmentationJob, sequencesLogic=None):
    """Every frame's segmentation recorded into the segmentation sequence the browser plays (created and
    synchronised if there is none; frames already there are updated in place, keeping their segment IDs)."""
    browserNode = segmentation.browserNode
    name = f"{frameSequences.masterFrameSequence(browserNode).GetName()} segmentation"
    try:
        return sequenceBrowsers.recordItemSegmentations(
            browserNode, segmentation.frames,
            lambda position, node: importFrameLabels(segmentation, position, node, browserNode.GetScene()),
            name, sequencesLogic, {MODEL_ATTRIBUTE: segmentation.model.name})
    finally:
        shutil.rmtree(segmentation.folder, ignore_errors=True)
