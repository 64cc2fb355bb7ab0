"""The IncrementalLap story on generated frames, for the module's self-test and the pytest suite (nothing is
downloaded): SYNTHETIC laparoscopic-looking frames from ``distillseg lap demo-data``, a tiny base model of two
structures from patient 01, frames of patient 03 segmented with it, patient 02's frames annotated for one new
structure, one learning step through the job runner with patient 03's frames marked for checking, and the same
frame segmented again with the new version into the same segmentation.

The frames are generated pictures, not laparoscopic images; the models trained here are far too small to segment
well: the story checks the plumbing (names, colours, segment IDs, grids, versions, scores), not accuracy.

``standInStory`` runs the module logic against the stand-in engine instead (no PyTorch needed): a first model
learned and scored, a frame and a sequence segmented, a new structure learned, a learning cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import vtk

import slicer

from DistillSegKernelLib import segmentLabels
from DistillSegKernelLib.engine import engineEnvironment
from DistillSegKernelLib.jobProtocol import requireSuccess
from DistillSegKernelLib.jobRunner import EngineJob
from DistillSegKernelLib.modelStore import ModelInfo, ModelStore

from . import frameSequences, frameVolumes, lapJobs
from .lapJobControl import LapJobControl, checkScores
from .lapJobs import LearningOptions

FRAME_SIZE = (64, 80)  # height, width of the generated frames
PATIENTS, FRAMES_PER_PATIENT = 3, 2
BASE_STRUCTURES = ["liver", "colon"]  # both visible in patient 01's frames of the seed-0 demo data
BASE_PATIENT, NEW_PATIENT, CHECK_PATIENT = "01", "02", "03"
NEW_STRUCTURE = "stomach"  # visible in one of patient 02's two frames, absent from the other
JOB_TIMEOUT_S = 600.0  # each engine job of the story
# A few iterations on a 64x64 working grid: minutes would be needed to segment well, seconds check the plumbing.
SELF_TEST_OPTIONS = dict(iterations=3, diffusionIterations=2, device="cpu", precision="fp32", batchSize=4,
                         sampleSteps=2, replay=2, workingSize=(64, 64), checkpointEvery=50)


def generateFrames(folder: str | Path, pump=None, environment: dict | None = None) -> Path:
    """SYNTHETIC demo frames (DSAD layout, ``SYNTHETIC_DATA.txt`` marker) written by the engine into ``folder``."""
    command = lapJobs.demoDataCommand(Path(folder), PATIENTS, FRAMES_PER_PATIENT, FRAME_SIZE)
    requireSuccess(EngineJob(command, engineEnvironment(environment)).start(), JOB_TIMEOUT_S, pump)
    return Path(folder)


def trainBaseModel(store: ModelStore, framesFolder: Path, name: str, options: LearningOptions, pump=None,
                   environment: dict | None = None) -> ModelInfo:
    """A first model of ``BASE_STRUCTURES`` from patient 01's frames (``lap train`` through the job runner)."""
    command = lapJobs.trainCommand(framesFolder, BASE_STRUCTURES, store.modelPath(name), options)
    command += ["--patients", BASE_PATIENT]
    store.ensureFolder()
    requireSuccess(EngineJob(command, engineEnvironment(environment)).start(), JOB_TIMEOUT_S, pump)
    return store.model(name)


def loadPatientFrames(scene, framesFolder: Path, patient: str, structures: list[str]) -> list[tuple]:
    """Patient ``patient``'s frames as vector volumes, each with a segmentation painted from the demo data's true
    masks of ``structures`` (what a user would paint in the Segment Editor); ``(frame node, segmentation)``."""
    pairs = []
    for imagePath in sorted((Path(framesFolder) / "multilabel" / patient).glob("image*.png")):
        frameNode = frameVolumes.loadFrame(imagePath, scene, f"patient {patient} {imagePath.stem}", patient)
        segmentationNode = segmentLabels.newSegmentationFor(frameNode, f"{frameNode.GetName()} annotation")
        segmentation = segmentationNode.GetSegmentation()
        for structure in structures:
            mask = frameVolumes.read_mask(imagePath.with_name(f"mask{imagePath.stem[5:]}_{structure}.png")) > 0
            segmentId = segmentation.AddEmptySegment(structure, structure)
            labelmapNode = frameVolumes.labelmapOnFrame(mask.astype(np.uint8), frameNode)
            try:
                _paint(segmentationNode, segmentId, labelmapNode)
            finally:
                scene.RemoveNode(labelmapNode)
        pairs.append((frameNode, segmentationNode))
    return pairs


def _paint(segmentationNode, segmentId, labelmapNode) -> None:
    """Set a segment from a 0/1 labelmap node (empty masks leave the segment empty: "not visible here")."""
    if slicer.util.arrayFromVolume(labelmapNode).any():
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentId)
        slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmapNode, segmentationNode, ids)


@dataclass
class StoryResult:
    """What the story produced, for the checks of a self-test."""

    baseModel: ModelInfo
    newModel: ModelInfo
    checkFrame: object
    segmentationNode: object
    idsBefore: dict[str, str] = field(default_factory=dict)  # structure name -> segment ID after the base model
    idsAfter: dict[str, str] = field(default_factory=dict)   # ... after the new version, same segmentation node
    scores: list | None = None  # the check frames' scores (None: the story did not score)


def segmentIdsByName(segmentationNode) -> dict[str, str]:
    segmentation = segmentationNode.GetSegmentation()
    return {segmentation.GetSegment(i).GetName(): i for i in segmentLabels.segmentIds(segmentationNode)}


def runStory(scene, store: ModelStore, workFolder: str | Path, options: LearningOptions | None = None, pump=None,
             environment: dict | None = None, scored: bool = True) -> StoryResult:
    """The whole story on generated frames (see the module docstring); every engine call goes through the job
    runner and the module logic's job control, as the module runs them. Without ``scored`` no frame is marked for
    checking, which saves the two ``lap evaluate`` runs (the self-test's choice: it checks scoring with the
    stand-in engine, and must end within a minute)."""
    options = options or LearningOptions(**SELF_TEST_OPTIONS)
    workFolder = Path(workFolder)
    framesFolder = generateFrames(workFolder / "demo frames", pump, environment)
    base = trainBaseModel(store, framesFolder, "lap sample", options, pump, environment)
    control = LapJobControl(store.folder)
    check = loadPatientFrames(scene, framesFolder, CHECK_PATIENT, BASE_STRUCTURES + [NEW_STRUCTURE])
    training = loadPatientFrames(scene, framesFolder, NEW_PATIENT, [NEW_STRUCTURE])
    checkFrame = check[0][0]
    parameters = SimpleNamespace(
        selectedModel=base.name, inputFrame=checkFrame, outputSegmentation=None, selectedFrames=[],
        sequenceBrowser=None, trainingSegmentations=[s for _, s in training], trainingSequenceBrowser=None,
        checkSegmentations=[s for _, s in check] if scored else [], newStructures="", newModelName="", iterations=None,
        diffusionIterations=None, device=options.device)
    requireSuccess(control.startSegmentation(parameters, "current", workFolder / "segment", environment),
                   JOB_TIMEOUT_S, pump)
    segmentationNode = control.finishJob().nodes[0]
    idsBefore = segmentIdsByName(segmentationNode)
    requireSuccess(control.startLearning(parameters, options, environment), JOB_TIMEOUT_S, pump)
    newModel = store.model(control.finishJob().modelName)
    requireSuccess(control.startSegmentation(parameters, "current", workFolder / "segment again", environment),
                   JOB_TIMEOUT_S, pump)
    control.finishJob()
    return StoryResult(base, newModel, checkFrame, segmentationNode, idsBefore, segmentIdsByName(segmentationNode),
                       checkScores(newModel) if scored else None)


def storyProblems(result: StoryResult) -> list[str]:
    """What is wrong with a story's result, as sentences (empty when the plumbing works): the new version knows the
    old and the new structures, the segmentation kept its segment IDs and gained one with the model's name and
    colour, and (when the story scored) every structure was scored on the check frames."""
    known = BASE_STRUCTURES + [NEW_STRUCTURE]
    problems = []
    names = [entry.name for entry in result.newModel.labels.entries]
    if names != known:
        problems.append(f"the new version knows {names}, not {known}")
    if sorted(result.idsAfter) != sorted(known):
        problems.append(f"the segmentation has segments {sorted(result.idsAfter)}, not {sorted(known)}")
    for name, segmentId in result.idsBefore.items():
        if result.idsAfter.get(name) != segmentId:
            problems.append(f"the segment ID of {name} changed from {segmentId} to {result.idsAfter.get(name)}")
    segmentation = result.segmentationNode.GetSegmentation()
    for entry in result.newModel.labels.entries:
        segment = segmentation.GetSegment(result.idsAfter.get(entry.name, ""))
        if segment is not None:
            color = [round(c * 255) for c in segment.GetColor()]
            if color != list(entry.color):
                problems.append(f"segment {entry.name} has colour {color}, the model says {list(entry.color)}")
    scored = {row.structure for row in result.scores} if result.scores is not None else set(known)
    if scored != set(known):
        problems.append(f"the check frames scored {sorted(scored)}, not {sorted(known)}")
    return problems


STAND_IN_TIMEOUT_S = 60.0


def _annotatedFrame(scene, rng: np.random.Generator, name: str, structures: list[str]):
    """A random 32x40 frame and a segmentation painted on it: one band of rows per structure."""
    frameNode = frameVolumes.addFrameNode(scene, rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), name)
    segmentationNode = segmentLabels.newSegmentationFor(frameNode, f"{name} annotation")
    for number, structure in enumerate(structures):
        mask = np.zeros((32, 40), np.uint8)
        mask[2 + 7 * number:8 + 7 * number, 4:36] = 1
        segmentId = segmentationNode.GetSegmentation().AddEmptySegment(structure, structure)
        labelmapNode = frameVolumes.labelmapOnFrame(mask, frameNode)
        try:
            _paint(segmentationNode, segmentId, labelmapNode)
        finally:
            scene.RemoveNode(labelmapNode)
    return frameNode, segmentationNode


def standInStory(scene, logic, parameters, workFolder, sequencesLogic=None, pump=None) -> list[str]:
    """The module logic against the stand-in engine (run it inside ``engine.standInEngine()``): a first model
    learned from two annotated frames and scored on a third (``lap train`` then ``lap evaluate``, one job), that
    frame segmented, every frame of a sequence segmented into a segmentation sequence, a new structure learned
    (``lap learn``), and a long learning cancelled and abandoned.

    ``logic``: the module logic (a ``LapJobControl``); ``parameters``: its parameter node, or an object with the same
    fields; ``sequencesLogic``: Slicer's sequences logic. Returns what went wrong, as sentences (empty when the
    module logic works).
    """
    rng, work = np.random.default_rng(0), Path(workFolder)
    first = [_annotatedFrame(scene, rng, f"stand-in frame {i}", BASE_STRUCTURES) for i in range(3)]
    parameters.selectedModel, parameters.newModelName, parameters.newStructures = "", "", ""
    parameters.trainingSegmentations = [segmentation for _, segmentation in first[:2]]
    parameters.checkSegmentations = [first[2][1]]
    parameters.trainingSequenceBrowser, parameters.sequenceBrowser = None, None
    parameters.iterations, parameters.diffusionIterations, parameters.device = 5, 2, "cpu"
    parameters.inputFrame, parameters.outputSegmentation, parameters.selectedFrames = first[2][0], None, []
    problems = []
    requireSuccess(logic.startLearning(parameters, sequencesLogic=sequencesLogic), STAND_IN_TIMEOUT_S, pump)
    base = logic.store.model(logic.finishJob().modelName)
    if [entry.name for entry in base.labels.entries] != BASE_STRUCTURES or parameters.selectedModel != base.name:
        problems.append(f"the first model {base.name} does not know {BASE_STRUCTURES} or is not selected")
    if sorted(row.structure for row in checkScores(base)) != sorted(BASE_STRUCTURES):
        problems.append("the first model was not scored on the check frame")
    requireSuccess(logic.startSegmentation(parameters, "current", work / "current", None, sequencesLogic),
                   STAND_IN_TIMEOUT_S, pump)
    if sorted(segmentIdsByName(logic.finishJob().nodes[0])) != sorted(BASE_STRUCTURES):
        problems.append("the current frame's segmentation lacks the model's structures")
    video = [frameVolumes.addFrameNode(scene, rng.integers(0, 256, (32, 40, 3), dtype=np.uint8), f"video {i}")
             for i in range(3)]
    _, parameters.sequenceBrowser = frameSequences.addFrameSequence(scene, video, "stand-in video", sequencesLogic)
    requireSuccess(logic.startSegmentation(parameters, "sequence", work / "sequence", None, sequencesLogic),
                   STAND_IN_TIMEOUT_S, pump)
    sequence = logic.finishJob().nodes[0]
    if sequence.GetNumberOfDataNodes() != 3 or not parameters.sequenceBrowser.GetSaveChanges(sequence):
        problems.append("every frame of the video was not segmented into a segmentation sequence that keeps edits")
    parameters.trainingSegmentations = [_annotatedFrame(scene, rng, "new patient", [NEW_STRUCTURE])[1]]
    requireSuccess(logic.startLearning(parameters, sequencesLogic=sequencesLogic), STAND_IN_TIMEOUT_S, pump)
    learned = logic.store.model(logic.finishJob().modelName)
    if [entry.name for entry in learned.labels.entries] != BASE_STRUCTURES + [NEW_STRUCTURE]:
        problems.append(f"the new version {learned.name} does not know {BASE_STRUCTURES + [NEW_STRUCTURE]}")
    parameters.iterations, parameters.newModelName = 100000, "cancelled"
    parameters.trainingSegmentations = [_annotatedFrame(scene, rng, "cancelled", ["ureter"])[1]]
    logic.startLearning(parameters, sequencesLogic=sequencesLogic)
    return problems + logic.cancelOnceStarted("cancelled", STAND_IN_TIMEOUT_S, pump)
