"""A tiny synthetic one-shot case for self-tests: an atlas with two labelled structures and unlabelled scans, and
the stories run on it (the module's self-test in Slicer and the pytest suite share them): the whole train ->
segment story through the engine, and the module logic's story against the stand-in engine (no PyTorch needed).

Each scan is a small anisotropic 3D volume with a bright ellipsoid ("blob", label 1) and a darker box ("box",
label 3 — a gap in the values on purpose, to check they are kept), moved and resized a little from scan to scan,
on a smooth background with noise. Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import slicer

from DistillSegKernelLib import segmentLabels, volumeFiles
from DistillSegKernelLib.jobProtocol import requireSuccess
from DistillSegKernelLib.modelStore import ModelStore

from distillseg.contract.labels import LabelEntry, LabelTable

from . import oneshotJobs, scanSegmentation
from .oneshotJobs import TrainingOptions

LABELS = LabelTable([LabelEntry(1, "blob", (230, 159, 0)), LabelEntry(3, "box", (86, 180, 233))])
SPACING_MM = (1.5, 1.5, 2.0)
LONG_STORY_VARIABLE = "ONESHOTSEG_LONG_SELF_TEST"  # "1": the self-test runs the long story


@dataclass(frozen=True)
class SelfTestStory:
    """The real-engine part of the module's self-test: a small CPU training (fp32: bf16 on a CPU diverged once on
    this case) on scans of ``shape`` voxels, and the Dice overlap each structure must reach. The scans are generated
    on one grid and roughly aligned, so pre-alignment is skipped."""

    iterations: int
    augmenterIterations: int
    shape: tuple[int, int, int]
    minimumDice: float

    def options(self) -> TrainingOptions:
        return TrainingOptions(iterations=self.iterations, augmenterIterations=self.augmenterIterations,
                               device="cpu", precision="fp32", prealign=False)


# Within a minute on two CPU cores (docs/slicer.md has the measurement); measured Dice: blob 0.95, box 0.74.
QUICK_STORY = SelfTestStory(iterations=30, augmenterIterations=10, shape=(16, 16, 16), minimumDice=0.6)
# Minutes on two cores; measured Dice: blob 0.94, box 0.90 (see the README picture).
LONG_STORY = SelfTestStory(iterations=150, augmenterIterations=40, shape=(24, 24, 24), minimumDice=0.7)


def selfTestStory() -> SelfTestStory:
    """The quick story, or the long one when ``$ONESHOTSEG_LONG_SELF_TEST`` is ``1``."""
    return LONG_STORY if os.environ.get(LONG_STORY_VARIABLE) == "1" else QUICK_STORY


def syntheticScan(rng: np.random.Generator, shape: tuple[int, int, int] = (24, 24, 24)) -> tuple[np.ndarray, np.ndarray]:
    """One scan and its truth: ``(image, labels)``, both (K, J, I) arrays (Slicer's order); image float32."""
    k, j, i = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    size = np.array(shape, dtype=np.float32)
    centre = size * (0.42 + rng.uniform(-0.05, 0.05, 3))
    radii = size * (0.22 + rng.uniform(-0.03, 0.03, 3))
    blob = ((k - centre[0]) / radii[0]) ** 2 + ((j - centre[1]) / radii[1]) ** 2 + ((i - centre[2]) / radii[2]) ** 2 <= 1
    corner = (size * (0.62 + rng.uniform(-0.04, 0.04, 3))).astype(int)
    extent = (size * 0.22).astype(int)
    box = np.zeros(shape, dtype=bool)
    box[corner[0]:corner[0] + extent[0], corner[1]:corner[1] + extent[1], corner[2]:corner[2] + extent[2]] = True
    box &= ~blob
    labels = np.zeros(shape, dtype=np.uint8)
    labels[blob] = 1
    labels[box] = 3
    image = 100.0 + 20.0 * (k / size[0]) + rng.normal(0.0, 8.0, shape)
    image[blob] += 300.0
    image[box] += 150.0
    return image.astype(np.float32), labels


@dataclass
class SampleCase:
    """Nodes of the case in a scene, and the true labels of every unlabelled scan (K, J, I arrays)."""

    atlasVolume: object
    atlasSegmentation: object
    unlabeledVolumes: list = field(default_factory=list)
    truths: list = field(default_factory=list)


def addVolume(scene, image: np.ndarray, name: str):
    """A scalar volume node with ``image`` (K, J, I) on a grid with ``SPACING_MM`` spacing."""
    volumeNode = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volumeNode.SetSpacing(*SPACING_MM)
    volumeNode.SetOrigin(-10.0, 5.0, 20.0)
    slicer.util.updateVolumeFromArray(volumeNode, image)
    volumeNode.CreateDefaultDisplayNodes()
    return volumeNode


def addSampleCase(scene, unlabeledCount: int = 3, seed: int = 0, shape=(24, 24, 24)) -> SampleCase:
    """Add an atlas volume with its segmentation and ``unlabeledCount`` unlabelled volumes to ``scene``."""
    rng = np.random.default_rng(seed)
    image, labels = syntheticScan(rng, shape)
    atlasVolume = addVolume(scene, image, "OneShotSeg atlas")
    atlasSegmentation = segmentLabels.newSegmentationFor(atlasVolume, "OneShotSeg atlas segmentation")
    labelmapNode = volumeFiles.labelmapNodeFromArray(labels, atlasVolume)
    try:
        segmentLabels.importLabelmap(labelmapNode, LABELS, atlasSegmentation)
    finally:
        scene.RemoveNode(labelmapNode)
    case = SampleCase(atlasVolume, atlasSegmentation)
    for index in range(unlabeledCount):
        image, labels = syntheticScan(rng, shape)
        case.unlabeledVolumes.append(addVolume(scene, image, f"OneShotSeg unlabelled {index + 1}"))
        case.truths.append(labels)
    return case


def dice(predicted: np.ndarray, truth: np.ndarray, value: int) -> float:
    """Dice overlap of ``value`` between two label arrays (1.0 when both are empty)."""
    a, b = predicted == value, truth == value
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def trainAndSegment(scene, store: ModelStore, workFolder, story: SelfTestStory, pump=None,
                    timeoutSeconds: float = 900.0) -> tuple[object, dict[int, float]]:
    """The whole user story on the sample case: train a model, segment the first unlabelled scan with it.

    Returns the new segmentation node and the Dice overlap with the truth per label value.
    """
    case = addSampleCase(scene, shape=story.shape)
    inputs = oneshotJobs.prepareTraining(store, "sample case", case.atlasVolume, case.atlasSegmentation,
                                         case.unlabeledVolumes)
    options = story.options()
    requireSuccess(oneshotJobs.startTraining(store, "sample case", inputs, options), timeoutSeconds, pump)
    model = oneshotJobs.finishTraining(store, "sample case", inputs)
    segmentation = scanSegmentation.startSegmentation(model, case.unlabeledVolumes[0], Path(workFolder) / "segment",
                                                      options.device)
    requireSuccess(segmentation.job, timeoutSeconds, pump)
    segmentationNode = scanSegmentation.finishSegmentation(segmentation)
    ids = segmentLabels.segmentIds(segmentationNode)
    values = [segmentLabels.taggedLabelValue(segmentationNode.GetSegmentation().GetSegment(i)) for i in ids]
    predicted = segmentLabels.mergedLabelArray(segmentationNode, case.unlabeledVolumes[0], ids, values)
    return segmentationNode, {value: dice(predicted, case.truths[0], value) for value in LABELS.values}


STAND_IN_TIMEOUT_S = 60.0


def standInStory(scene, logic, parameters, workFolder, pump=None) -> list[str]:
    """The module logic against the stand-in engine (run it inside ``engine.standInEngine()``): a training started
    from the module's parameters and followed through its progress events, its model brought into the model list,
    a scan segmented twice into the same segmentation, and a long training cancelled and abandoned.

    ``logic``: the module logic (a ``OneShotJobControl``); ``parameters``: its parameter node, or an object with the
    same fields; temporary files go to ``workFolder``. Returns what went wrong, as sentences (empty when the module
    logic works).
    """
    case = addSampleCase(scene, unlabeledCount=2, shape=(12, 12, 12))
    parameters.atlasVolume, parameters.atlasSegmentation = case.atlasVolume, case.atlasSegmentation
    parameters.unlabeledVolumes, parameters.unlabeledFolder = case.unlabeledVolumes, ""
    parameters.modelName, parameters.iterations, parameters.augmenterIterations = "stand-in", 20, 5
    parameters.device, parameters.alreadyAligned, parameters.spacingMm = "cpu", True, 0.0
    parameters.inputVolume, parameters.outputSegmentation = case.unlabeledVolumes[0], None
    problems = []
    job = requireSuccess(logic.startTraining(parameters), STAND_IN_TIMEOUT_S, pump)
    if (job.progress.stage, job.progress.step, job.progress.total) != ("distill", 20, 20) or job.device != "cpu":
        problems.append(f"the training's progress was read as {job.progress} on {job.device}")
    model = logic.store.model(logic.finishJob().modelName)
    if [entry.name for entry in model.labels.entries] != ["blob", "box"] or parameters.selectedModel != model.name:
        problems.append(f"the trained model {model.name} is not the atlas's structures or not selected")
    nodes = []
    for _ in range(2):
        requireSuccess(logic.startSegmentation(parameters, Path(workFolder) / "segment"), STAND_IN_TIMEOUT_S, pump)
        nodes.append(logic.finishJob().segmentationNode)
    ids = segmentLabels.segmentIds(nodes[0])
    names = [nodes[0].GetSegmentation().GetSegment(i).GetName() for i in ids]
    painted = bool(ids) and segmentLabels.mergedLabelArray(nodes[0], case.unlabeledVolumes[0], ids, [1, 3]).any()
    if nodes[0] is not nodes[1] or names != ["blob", "box"] or not painted:
        problems.append(f"segmenting twice gave {names} in {len(set(map(id, nodes)))} segmentation(s)")
    parameters.modelName, parameters.iterations = "cancelled", 100000
    logic.startTraining(parameters)
    return problems + logic.cancelOnceStarted("cancelled", STAND_IN_TIMEOUT_S, pump)
