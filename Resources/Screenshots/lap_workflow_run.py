"""One real run of the IncrementalLap workflow for the README picture, through the module's Lib on a headless
slicer-core scene (the code the module runs in Slicer), on SYNTHETIC frames from ``distillseg lap demo-data``.

1. demo frames: 8 patients x 12 frames, 240x320 (generated pictures, not laparoscopic images);
2. an existing model: ``lap train`` of liver, stomach and colon on patients 01-04 (128x160 working grid);
3. the module's story: patient 08's frames loaded as RGB volumes and segmented with that model; patients 05 and 06
   annotated for the new structure small_intestine only (painted from the generated truth, as a user paints in the
   Segment Editor); Learn new structures (``lap learn`` through the job runner) with patient 08's frames marked for
   checking (all four structures annotated); the same frame segmented again with the new version.

    PYTHONPATH=. python Resources/Screenshots/lap_workflow_run.py OUT

Writes ``OUT/result.npz`` (the shown frame, its truth, the labels of both versions: (H, W) arrays),
``OUT/run.json`` (options, times, device, scores) and ``OUT/panel_state.json`` for ``render_module_panel.py``.
It trains for several minutes: run it on an otherwise idle machine for its times to mean anything.
"""

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[2]
# The module folders, as Slicer puts them on sys.path for scripted modules, and the tests' headless application.
sys.path[:0] = [str(REPO / "DistillSegKernel"), str(REPO / "IncrementalLap"), str(REPO / "Testing" / "mrml")]

import slicer  # noqa: E402
from headless_slicer import headlessApplication  # noqa: E402

from IncrementalLapLib import lapJobs, sampleFrames  # noqa: E402
from IncrementalLapLib.lapJobControl import LapJobControl, checkScores, modelSteps  # noqa: E402
from IncrementalLapLib.lapJobs import LearningOptions  # noqa: E402
from DistillSegKernelLib import segmentLabels  # noqa: E402
from DistillSegKernelLib.engine import engineEnvironment  # noqa: E402
from DistillSegKernelLib.jobProtocol import requireSuccess  # noqa: E402
from DistillSegKernelLib.jobRunner import EngineJob  # noqa: E402
from DistillSegKernelLib.modelStore import ModelStore  # noqa: E402

BASE = ["liver", "stomach", "colon"]
NEW = "small_intestine"
BASE_PATIENTS, NEW_PATIENTS, CHECK_PATIENT = "01,02,03,04", ["05", "06"], "08"
BASE_OPTIONS = dict(iterations=300, diffusionIterations=200, device="cpu", precision="fp32", threads=2,
                    workingSize=(128, 160))
LEARN_OPTIONS = dict(iterations=120, diffusionIterations=100, device="cpu", precision="fp32", threads=2)


def timed(job):
    requireSuccess(job, 3 * 3600)
    return round(job.elapsedSeconds(), 1)


def labelsOf(segmentationNode, frameNode, model):
    ids = sampleFrames.segmentIdsByName(segmentationNode)
    names = {entry.name: entry.value for entry in model.labels.entries}
    known = [name for name in ids if name in names]
    return segmentLabels.mergedLabelArray(segmentationNode, frameNode, [ids[n] for n in known],
                                          [names[n] for n in known])[0]


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scene = headlessApplication(withSequences=True).scene
    store = ModelStore("lap", out / "models")
    store.ensureFolder()
    times = {}
    demo = out / "demo frames"
    times["demo_data_s"] = timed(EngineJob(lapJobs.demoDataCommand(demo, 8, 12, (240, 320)),
                                           engineEnvironment()).start())
    base = LearningOptions(**BASE_OPTIONS)
    command = lapJobs.trainCommand(demo, BASE, store.modelPath("lap demo"), base) + ["--patients", BASE_PATIENTS]
    baseJob = EngineJob(command, engineEnvironment()).start()
    times["base_training_s"] = timed(baseJob)

    control = LapJobControl(store.folder)
    allStructures = BASE + [NEW]
    check = sampleFrames.loadPatientFrames(scene, demo, CHECK_PATIENT, allStructures)
    training = [pair for patient in NEW_PATIENTS
                for pair in sampleFrames.loadPatientFrames(scene, demo, patient, [NEW])]
    truths = []
    for frameNode, segmentationNode in check:  # the shown frame: the one where the smallest structure is largest
        ids = sampleFrames.segmentIdsByName(segmentationNode)
        truth = segmentLabels.mergedLabelArray(segmentationNode, frameNode, [ids[n] for n in allStructures],
                                               [1, 2, 3, 4])[0]
        truths.append(truth)
    shown = int(np.argmax([min((t == v).sum() for v in (1, 2, 3, 4)) for t in truths]))
    frameNode = check[shown][0]
    parameters = SimpleNamespace(
        selectedModel="lap demo", inputFrame=frameNode, outputSegmentation=None, selectedFrames=[],
        sequenceBrowser=None, trainingSegmentations=[s for _, s in training], trainingSequenceBrowser=None,
        checkSegmentations=[s for _, s in check], newStructures="", newModelName="", iterations=None,
        diffusionIterations=None, device="cpu")
    times["segment_base_s"] = timed(control.startSegmentation(parameters, "current", out / "segment"))
    segmentationNode = control.finishJob().nodes[0]
    before = labelsOf(segmentationNode, frameNode, store.model("lap demo"))
    learning = control.startLearning(parameters, LearningOptions(**LEARN_OPTIONS))
    times["learning_and_scoring_s"] = timed(learning)
    learnLog = learning.logLines
    device = learning.deviceDescription
    newModel = store.model(control.finishJob().modelName)
    times["segment_new_s"] = timed(control.startSegmentation(parameters, "current", out / "segment again"))
    control.finishJob()
    after = labelsOf(segmentationNode, frameNode, newModel)
    step = newModel.manifest["history"][-1]
    times["learn_step_engine_s"] = step["seconds"]

    np.savez_compressed(out / "result.npz", frame=slicer.util.arrayFromVolume(frameNode)[0], truth=truths[shown],
                        before=before, after=after)
    rows = checkScores(newModel)
    scores = [vars(row) for row in rows]
    colors = {entry.name: list(entry.color) for entry in newModel.labels.entries}
    run = {"synthetic": True, "structures": allStructures, "colors": colors, "base_options": BASE_OPTIONS,
           "base_patients": BASE_PATIENTS, "learn_options": LEARN_OPTIONS, "new_patients": NEW_PATIENTS,
           "check_patient": CHECK_PATIENT, "shown_frame": frameNode.GetName(), "device": device, "times": times,
           "scores": scores, "new_model": newModel.name, "frames_learned": step["data"]["frames"],
           "replayed_frames": step["replayed_frames"]}
    (out / "run.json").write_text(json.dumps(run, indent=1), encoding="utf-8")
    names = [m.name for m in store.models()]
    panel = {"size": [430, 1620], "widgets": {
        "modelListWidget": {"items": names, "current": names.index(newModel.name)},
        "modelInfoLabel": newModel.summary(),
        "versionComboBox": [d for _, d in reversed(modelSteps(newModel))],
        "inputFrameSelector": frameNode.GetName(), "outputSegmentationSelector": segmentationNode.GetName(),
        "selectedFramesComboBox": "", "sequenceBrowserSelector": "None",
        "trainingSegmentationsComboBox": f"{len(training)} annotated frames (patients {', '.join(NEW_PATIENTS)})",
        "trainingSequenceSelector": "None",
        "checkSegmentationsComboBox": f"{len(check)} frames of patient {CHECK_PATIENT}",
        "newModelNameLineEdit": newModel.name, "iterationsSpinBox": LEARN_OPTIONS["iterations"],
        "diffusionIterationsSpinBox": LEARN_OPTIONS["diffusionIterations"], "deviceComboBox": "cpu",
        "scoresTableWidget": {"header": ["Structure", "IoU before", "IoU after", "Dice before", "Dice after"],
                              "rows": [row.cells() for row in rows]},
        "deviceLabel": f"Learning running on {device} (fp32).", "progressBar": 1000,
        "statusLabel": f"Model '{newModel.name}' is ready ({round(times['learning_and_scoring_s'] / 60, 1)} min).",
        "logTextEdit": [line for line in learnLog if not line.startswith("Running on")][-10:]}}
    (out / "panel_state.json").write_text(json.dumps(panel, indent=1), encoding="utf-8")
    print(json.dumps(run, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
