"""Segment scans with a OneShotSeg model: one scan, every checked scan, every time point of a 4-D scan (a volume
sequence, into a segmentation sequence played by the same browser), or every scan of a folder (into label map
files in an output folder).

Each is one ``distillseg oneshot segment`` request with every scan as ``--input``, sent to the engine worker
(``DistillSegKernelLib.engineWorker``: the model stays loaded between segmentations): one job and one progress bar,
since the engine's one ``segment`` stage runs through every scan (and through each scan's refinement, when the
predictor refines its registration). Loaded scans are written to the job's temporary folder as the
job is polled, a slice of time at each poll (``jobChain.JobChain``'s preparation), so a long 4-D series does not
freeze Slicer before the job starts. Each label map comes back onto its own scan's exact grid; segments get the
model's names, colours and terminology, and existing segments of the same structures are updated in place.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from DistillSegKernelLib import engineWorker, segmentLabels, sequenceBrowsers, volumeFiles
from DistillSegKernelLib.jobChain import JobChain
from DistillSegKernelLib.modelStore import ModelInfo

from distillseg.contract.manifest import ONESHOT as METHOD
from distillseg.contract.paths import segmentation_file_name

from .oneshotJobs import OneShotJobError, engineImagesIn

LABEL_SUFFIX = ".nrrd"  # the engine's label maps come back as plain NRRD, read with Slicer's own reader
MODEL_ATTRIBUTE = "OneShotSeg.Model"  # on a segmentation sequence this module recorded: the model's name


@dataclass
class ScanSegmentationJob:
    """Scans being segmented by one model: ``scans`` are ``(key, volume node)`` pairs (key = the sequence index
    value, or the position in a selection), written as ``<folder>/scans/scan<NNNNN>.nrrd``; with a ``browserNode``
    the keys are index values of its volume sequence and the result goes into its segmentation sequence."""

    model: ModelInfo
    scans: list[tuple[str, object]]
    folder: Path
    job: JobChain
    browserNode: object = None

    def scanFile(self, position: int) -> Path:
        return self.folder / "scans" / f"scan{position:05d}{LABEL_SUFFIX}"

    def labelFile(self, position: int) -> Path:
        return self.folder / "labels" / segmentation_file_name(self.scanFile(position).name, LABEL_SUFFIX)


def segmentArguments(model: ModelInfo, inputFiles: list[Path], output: Path, device: str = "auto",
                     labelSuffix: str | None = LABEL_SUFFIX) -> list[str]:
    """``oneshot segment`` of ``inputFiles`` into the folder ``output`` (label maps ``<stem>_seg<labelSuffix>``;
    None: the engine's choice per scan), as the engine worker runs it (``engineWorker.startRequest``)."""
    arguments = ["oneshot", "segment", "--model", model.path, "--input", *inputFiles, "--output", output,
                 "--device", device, "--progress", "jsonl"]
    if labelSuffix:
        arguments += ["--format", labelSuffix]
    return [str(a) for a in arguments]


def _checkModel(model: ModelInfo) -> None:
    if model.method != METHOD:
        raise OneShotJobError(f"Model '{model.name}' is not a OneShotSeg model.")


def _writeScans(segmentation: ScanSegmentationJob) -> Iterator[tuple[int, int]]:
    """Write each scan for the engine; yields ``(written, total)`` after each."""
    for position, (_, volumeNode) in enumerate(segmentation.scans):
        volumeFiles.writeVolumeFile(volumeNode, segmentation.scanFile(position))
        yield position + 1, len(segmentation.scans)


def startScanSegmentation(model: ModelInfo, scans: list[tuple[str, object]], folder: str | Path,
                          device: str = "auto", environment: dict | None = None, onEvent=None,
                          browserNode=None) -> ScanSegmentationJob:
    """Start segmenting loaded scans; returns at once (the scans are written as the job is polled, then
    ``distillseg oneshot segment`` runs on all of them in the engine worker)."""
    _checkModel(model)
    if not scans:
        raise OneShotJobError("Select at least one scan to segment.")
    for _, volumeNode in scans:
        volumeFiles.checkScalarVolume(volumeNode, "scan to segment")  # refused now, not when its turn comes
    folder = Path(folder)
    (folder / "scans").mkdir(parents=True, exist_ok=True)
    segmentation = ScanSegmentationJob(model, list(scans), folder, None, browserNode)
    inputs = [segmentation.scanFile(position) for position in range(len(scans))]
    segmentation.job = JobChain([("segmenting", segmentArguments(model, inputs, folder / "labels", device))],
                                environment, onEvent, preparation=("writing scans", _writeScans(segmentation)),
                                startStep=engineWorker.startRequest).start()
    return segmentation


def startSegmentation(model: ModelInfo, volumeNode, folder: str | Path, device: str = "auto",
                      environment: dict | None = None, onEvent=None) -> ScanSegmentationJob:
    """One loaded scan (the module's Segment button and the Segment Editor effect)."""
    return startScanSegmentation(model, [("0", volumeNode)], folder, device, environment, onEvent)


def masterVolumeSequence(browserNode):
    """The browser's master sequence, checked to hold scalar volumes (the time points of a 4-D scan)."""
    sequenceNode = browserNode.GetMasterSequenceNode() if browserNode is not None else None
    if sequenceNode is None or sequenceNode.GetNumberOfDataNodes() == 0:
        raise OneShotJobError("Select a sequence browser that plays a sequence of scans (a 4-D volume).")
    if sequenceNode.GetDataNodeClassName() != "vtkMRMLScalarVolumeNode":
        raise OneShotJobError(f"Sequence '{sequenceNode.GetName()}' holds {sequenceNode.GetDataNodeClassName()} "
                              "items, not scalar volumes; OneShotSeg segments sequences of 3D scans.")
    return sequenceNode


def startSequenceSegmentation(model: ModelInfo, browserNode, folder: str | Path, device: str = "auto",
                              environment: dict | None = None, onEvent=None) -> ScanSegmentationJob:
    """Every time point of the browser's volume sequence."""
    scans = sequenceBrowsers.itemsOfSequence(masterVolumeSequence(browserNode))
    return startScanSegmentation(model, scans, folder, device, environment, onEvent, browserNode)


@dataclass
class FolderSegmentationJob:
    """Every scan of ``inputFolder`` segmented into label map files in ``outputFolder`` (nothing is loaded)."""

    model: ModelInfo
    inputFiles: list[Path]
    outputFolder: Path
    job: JobChain


def startFolderSegmentation(model: ModelInfo, inputFolder: str | Path, outputFolder: str | Path,
                            device: str = "auto", environment: dict | None = None,
                            onEvent=None) -> FolderSegmentationJob:
    """Every NIfTI/NRRD scan of ``inputFolder`` into ``outputFolder`` (``<name>_seg.nii.gz`` or ``.seg.nrrd``, as
    the engine names them). The engine refuses before any work to replace a file it did not write there."""
    _checkModel(model)
    if not outputFolder:
        raise OneShotJobError("Choose the folder the segmentations of the scans go to.")
    files = engineImagesIn(inputFolder)
    if not files:
        raise OneShotJobError(f"{inputFolder}: the folder holds no NIfTI or NRRD scan to segment.")
    arguments = segmentArguments(model, files, Path(outputFolder), device, labelSuffix=None)
    job = JobChain([("segmenting", arguments)], environment, onEvent, startStep=engineWorker.startRequest).start()
    return FolderSegmentationJob(model, files, Path(outputFolder), job)


def discard(segmentation) -> None:
    """Remove the temporary files of a failed or cancelled segmentation of loaded scans."""
    if isinstance(segmentation, ScanSegmentationJob):
        shutil.rmtree(segmentation.folder, ignore_errors=True)


def importScanLabels(segmentation: ScanSegmentationJob, position: int, segmentationNode, scene) -> None:
    """Scan ``position``'s engine labels into ``segmentationNode`` (``scene``: the main scene)."""
    volumeNode = segmentation.scans[position][1]
    labelmapNode = volumeFiles.readLabelmapOnGrid(segmentation.labelFile(position), volumeNode, scene=scene)
    try:
        segmentLabels.importLabelmap(labelmapNode, segmentation.model.labels, segmentationNode)
    finally:
        scene.RemoveNode(labelmapNode)


def finishIntoSegmentations(segmentation: ScanSegmentationJob, targets: list | None = None) -> list:
    """One segmentation per scan: ``targets[i]`` if given (updated in place), else a new one named after the scan
    and the model. The temporary folder is removed."""
    nodes = []
    try:
        for position, (_, volumeNode) in enumerate(segmentation.scans):
            node = targets[position] if targets and position < len(targets) else None
            if node is None:
                node = segmentLabels.newSegmentationFor(volumeNode,
                                                        f"{volumeNode.GetName()} {segmentation.model.name}")
            importScanLabels(segmentation, position, node, volumeNode.GetScene())
            nodes.append(node)
    finally:
        shutil.rmtree(segmentation.folder, ignore_errors=True)
    return nodes


def finishSegmentation(segmentation: ScanSegmentationJob, segmentationNode=None):
    """The one scan of ``startSegmentation`` into ``segmentationNode`` (a new one if None); returns the node."""
    return finishIntoSegmentations(segmentation, [segmentationNode])[0]


def finishIntoSequence(segmentation: ScanSegmentationJob, sequencesLogic=None):
    """Every time point's segmentation recorded into the segmentation sequence the browser plays (created and
    synchronised if there is none; time points already there are updated in place, keeping their segment IDs)."""
    browserNode, model = segmentation.browserNode, segmentation.model
    name = f"{masterVolumeSequence(browserNode).GetName()} {model.name}"
    try:
        return sequenceBrowsers.recordItemSegmentations(
            browserNode, segmentation.scans,
            lambda position, node: importScanLabels(segmentation, position, node, browserNode.GetScene()),
            name, sequencesLogic, {MODEL_ATTRIBUTE: model.name})
    finally:
        shutil.rmtree(segmentation.folder, ignore_errors=True)
