"""The bad-input matrix of the Slicer glue (OneShotSegLib) on a real headless slicer-core scene: every case calls
the real Lib function the module calls and checks that it refuses with its own error type and ONE sentence that
names the node or file and the problem, and that nothing is half-done: no node left in the scene, no job folder,
no model or temporary folder in the store. Two cases run the real engine through the job runner (an out-of-memory
refusal and an engine killed by the system); one case with spaces and non-ASCII letters in every path must work.

Each case records its group and sentence (``record_property``) for ``benchmarks/reliability_report.py``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from mrml_fixtures import oneshotParameters, scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.common.volume_io import read_image, read_labels, write_labels
from distillseg.contract.errors import EXIT_OUT_OF_MEMORY, UserError
from DistillSegKernelLib import jobProtocol, jobRunner, segmentLabels, volumeFiles
from OneShotSegLib import oneshotJobs, sampleCase, scanSegmentation
from DistillSegKernelLib.engine import engineCommand, engineEnvironment
from OneShotSegLib.jobControl import OneShotJobControl
from distillseg.contract.labels import LabelTable
from DistillSegKernelLib.modelStore import ModelInfo, ModelStore
from tiny_models import oneshot_fixture

import slicer

INPUT_FILES, MODELS, MEMORY, INTERRUPTED = "input files", "models", "memory", "interrupted jobs"


@dataclass
class GlueCase:
    """``call`` runs the Lib; it must raise ``error`` (None: must work, then ``check`` runs) with a sentence holding
    ``names`` and ``fragments``; ``absent`` must not exist afterwards."""

    call: Callable[[], object]
    error: type[Exception] | None
    fragments: tuple[str, ...] = ()
    names: str | None = None
    absent: list[Path] = field(default_factory=list)
    check: Callable[[object], None] | None = None


@dataclass
class World:
    scene: object
    tmp: Path
    store: ModelStore
    case: object
    tiny: object  # the shared engine model and scans (tiny_models.oneshot_fixture)

    def job_folder(self, name="m") -> Path:
        return self.store.jobsFolder() / name


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory)


def _volume(scene, array, name="scan"):
    return sampleCase.addVolume(scene, array.astype(np.float32), name)


def _bundle_zip(world: World, name: str, change=lambda manifest: None, extra=()) -> Path:
    """The shared engine model as a zip (one top folder), with its manifest changed and extra members."""
    source = world.tiny.model
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    path = world.tmp / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in source.iterdir():
            if file.name != "manifest.json":
                archive.write(file, f"{name}/{file.name}")
        archive.writestr(f"{name}/manifest.json", json.dumps(manifest))
        for member, data in extra:
            archive.writestr(member, data)
    return path


# ------------------------------------------------------------------------------------------------ the cases
def volume_without_image(w):
    node = w.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "empty node")
    return GlueCase(lambda: volumeFiles.checkScalarVolume(node, "atlas"), volumeFiles.VolumeFileError,
                    ("no image data",), "empty node")


def atlas_is_rgb(w):
    rgb = w.scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour atlas")
    slicer.util.updateVolumeFromArray(rgb, np.zeros((6, 8, 8, 3), dtype=np.uint8))
    return GlueCase(lambda: oneshotJobs.prepareTraining(w.store, "m", rgb, w.case.atlasSegmentation,
                                                        w.case.unlabeledVolumes),
                    volumeFiles.VolumeFileError, ("RGB/vector",), "colour atlas", [w.job_folder()])


def scan_with_nan(w):
    array = slicer.util.arrayFromVolume(w.case.unlabeledVolumes[0]).copy()
    array[3, 4, 5] = np.nan
    node = _volume(w.scene, array, "scan with holes")
    return GlueCase(lambda: oneshotJobs.prepareTraining(w.store, "m", w.case.atlasVolume, w.case.atlasSegmentation,
                                                        [node]),
                    volumeFiles.VolumeFileError, ("NaN or infinite",), "scan with holes", [w.job_folder()])


def segmentation_without_segments(w):
    empty = segmentLabels.newSegmentationFor(w.case.atlasVolume, "no segments")
    return GlueCase(lambda: oneshotJobs.prepareTraining(w.store, "m", w.case.atlasVolume, empty,
                                                        w.case.unlabeledVolumes),
                    segmentLabels.SegmentationLabelError, ("has no segments",), "no segments", [w.job_folder()])


def segments_outside_the_atlas(w):
    far = _volume(w.scene, np.zeros((6, 6, 6)), "far away")
    far.SetOrigin(500.0, 500.0, 500.0)
    segmentation = segmentLabels.newSegmentationFor(far, "painted elsewhere")
    labelmap = volumeFiles.labelmapNodeFromArray(np.ones((6, 6, 6), np.uint8), far)
    segmentLabels.importLabelmap(labelmap, LabelTable.defaults([1]), segmentation)
    w.scene.RemoveNode(labelmap)
    return GlueCase(lambda: oneshotJobs.prepareTraining(w.store, "m", w.case.atlasVolume, segmentation,
                                                        w.case.unlabeledVolumes),
                    segmentLabels.SegmentationLabelError, ("no painted voxel inside volume",), "painted elsewhere",
                    [w.job_folder()])


def label_value_overflow(w):
    shape = slicer.util.arrayFromVolume(w.case.atlasVolume).shape
    values = np.zeros(shape, np.int32)
    values[2:5, 2:5, 2:5] = 70000
    labelmap = w.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "huge values")
    labelmap.CopyOrientation(w.case.atlasVolume)
    slicer.util.updateVolumeFromArray(labelmap, values)
    target = segmentLabels.newSegmentationFor(w.case.atlasVolume, "target")

    def check_untouched(_):
        assert segmentLabels.segmentIds(target) == []

    return GlueCase(lambda: segmentLabels.importLabelmap(labelmap, LabelTable(), target),
                    segmentLabels.SegmentationLabelError, ("outside 1..65535",), "huge values", check=check_untouched)


def engine_output_truncated(w):
    path = w.tmp / "labels.nrrd"
    write_labels(path, np.ones((24, 24, 24), np.uint8), np.eye(4))
    path.write_bytes(path.read_bytes()[:200])
    return GlueCase(lambda: volumeFiles.readLabelmapOnGrid(path, w.case.atlasVolume), volumeFiles.VolumeFileError,
                    ("could not be read",), str(path))


def import_newer_format(w):
    archive = _bundle_zip(w, "future", lambda m: m.update(format_version=99))
    return GlueCase(lambda: w.store.importZip(archive), UserError, ("format version 99", "newer"),
                    str(archive), [w.store.folder / "future"])


def import_corrupted_member(w):
    archive = _bundle_zip(w, "damaged")
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as readable:
        member = readable.getinfo("damaged/student.safetensors")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    data[start + member.compress_size // 2] ^= 0xFF  # flip a byte inside the stored weights
    archive.write_bytes(bytes(data))
    return GlueCase(lambda: w.store.importZip(archive), UserError, ("damaged",), str(archive),
                    [w.store.folder / "damaged"])


def import_truncated_zip(w):
    archive = _bundle_zip(w, "cut")
    archive.write_bytes(archive.read_bytes()[:1000])
    return GlueCase(lambda: w.store.importZip(archive), UserError, ("not a readable zip file",), str(archive),
                    [w.store.folder / "cut"])


def import_weights_outside(w):
    def escape(manifest):
        manifest["weights"]["student"]["file"] = "../../student.safetensors"

    archive = _bundle_zip(w, "escaping", escape)
    return GlueCase(lambda: w.store.importZip(archive), UserError, ("is not a plain file name inside the model folder",), str(archive),
                    [w.store.folder / "escaping"])


def import_two_manifests(w):
    archive = _bundle_zip(w, "twice", extra=[("other/manifest.json", "{}")])
    return GlueCase(lambda: w.store.importZip(archive), UserError, ("not a model bundle",), str(archive),
                    [w.store.folder / "twice"])


def segment_with_lap_model(w):
    model = ModelInfo("frames", w.tmp / "frames", {"method": "lap", "labels": []})
    return GlueCase(lambda: scanSegmentation.startSegmentation(model, w.case.atlasVolume, w.tmp / "work"),
                    oneshotJobs.OneShotJobError, ("not a OneShotSeg model",), "frames", [w.tmp / "work"])


def segment_single_slice(w):
    flat = _volume(w.scene, np.zeros((1, 8, 8)), "one slice")
    model = ModelInfo("tiny", w.tiny.model, {"method": "oneshot", "labels": []})
    return GlueCase(lambda: scanSegmentation.startSegmentation(model, flat, w.tmp / "work"),
                    volumeFiles.VolumeFileError,
                    ("single slice",), "one slice", [w.tmp / "work"])


def resume_without_options(w):
    inputs = oneshotJobs.prepareTraining(w.store, "m", w.case.atlasVolume, w.case.atlasSegmentation,
                                         w.case.unlabeledVolumes)
    return GlueCase(lambda: oneshotJobs.startTraining(w.store, "m", inputs, None, resume=True),
                    oneshotJobs.OneShotJobError, ("options of this unfinished training are gone",),
                    str(inputs.folder / oneshotJobs.OPTIONS_FILE), [w.store.folder / "m"])


def engine_out_of_memory(w):
    out = w.tmp / "labels.nrrd"
    command = engineCommand(["oneshot", "segment", "--model", w.tiny.model, "--input", w.tiny.case["scans"][0],
                             "--output", out, "--device", "cpu", "--max-memory", "200M", "--progress", "jsonl"])

    def run():
        job = jobRunner.runEngine(command, engineEnvironment(), timeoutSeconds=120)
        assert job.state == jobProtocol.FAILED and job.exitCode == EXIT_OUT_OF_MEMORY
        raise RuntimeError(job.errorMessage)

    return GlueCase(run, RuntimeError, ("--max-memory",), None, [out])


def engine_killed_by_the_system(w):
    """A training started and ended the way the module does it (its job control), the engine SIGKILLed mid-way."""
    control = OneShotJobControl(w.store.folder)
    parameters = oneshotParameters(w.case, modelName="killed", augmenterIterations=500)

    def run():
        job = control.startTraining(parameters)
        while job.running and not (job.progress.stage == "augmenter" and job.progress.step >= 2):
            jobProtocol.waitFor(job, 0.1)
        os.kill(job.pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
        assert jobProtocol.waitFor(job, 60) == jobProtocol.FAILED
        control.abandonJob()  # what the module does with a failed job
        raise RuntimeError(job.errorMessage)

    return GlueCase(run, RuntimeError, ("stopped by signal 9",), None, [w.store.folder / "killed"])


def odd_paths_work(w):
    store = ModelStore(oneshotJobs.METHOD, w.tmp / "home ü é 脳" / "models")

    def check(inputs):
        atlas, labels = read_image(inputs.atlasImage), read_labels(inputs.atlasLabels)
        assert "ü é 脳" in str(inputs.atlasImage) and labels.shape == atlas.shape
        assert set(np.unique(labels.array)) == {0, 1, 3}
        assert [read_image(p).shape for p in inputs.unlabeled] == [atlas.shape]

    return GlueCase(lambda: oneshotJobs.prepareTraining(store, "Gehirn Müller 脳", w.case.atlasVolume,
                                                        w.case.atlasSegmentation, w.case.unlabeledVolumes),
                    None, check=check)


CASES = {
    INPUT_FILES: [volume_without_image, atlas_is_rgb, scan_with_nan, segmentation_without_segments,
                  segments_outside_the_atlas, label_value_overflow, engine_output_truncated, segment_single_slice,
                  odd_paths_work],
    MODELS: [import_newer_format, import_corrupted_member, import_truncated_zip, import_weights_outside,
             import_two_manifests, segment_with_lap_model],
    MEMORY: [engine_out_of_memory],
    INTERRUPTED: [resume_without_options, engine_killed_by_the_system],
}
PARAMS = [pytest.param(group, build, id=build.__name__.replace("_", "-")) for group, builds in CASES.items()
          for build in builds]


def _hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] if folder.is_dir() else []


@pytest.mark.parametrize("group, build", PARAMS)
def test_bad_input(group, build, scene, tiny, tmp_path, record_property):
    world = World(scene, tmp_path, ModelStore(oneshotJobs.METHOD, tmp_path / "home" / "models"),
                  sampleCase.addSampleCase(scene, unlabeledCount=1), tiny)
    case = build(world)
    nodes = scene.GetNumberOfNodes()
    record_property("group", group)
    if case.error is None:
        case.check(case.call())
        record_property("message", "(works)")
        return
    with pytest.raises(case.error) as info:
        case.call()
    sentence = str(info.value)
    record_property("message", sentence.replace(str(tmp_path), "<tmp>"))
    assert "\n" not in sentence and sentence.endswith(".") and not re.search(r"\. [A-Z]", sentence), sentence
    if case.names is not None:
        assert case.names in sentence, sentence
    for fragment in case.fragments:
        assert fragment in sentence, sentence
    assert scene.GetNumberOfNodes() == nodes, "a node was left in the scene"
    for path in case.absent:
        assert not path.exists(), path
    assert _hidden(world.store.folder) == [] or all(n.endswith(".lock") for n in _hidden(world.store.folder))
    if case.check is not None:
        case.check(None)
