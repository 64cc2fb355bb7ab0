"""The OneShotSeg jobs' preparation: the engine command line, the unlabelled-folder scan, and the files written for
the engine from the scene (atlas scan, atlas labels with their table, unlabelled scans)."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.contract.labels import read_label_names_json
from distillseg.common.volume_io import read_image, read_labels, write_image
from OneShotSegLib import oneshotJobs, sampleCase
from DistillSegKernelLib.modelStore import ModelStore

import slicer


def test_training_options_become_engine_arguments():
    options = oneshotJobs.TrainingOptions(iterations=5, augmenterIterations=3, spacingMm=2.5, device="cuda",
                                          prealign=False, threads=3, checkpointEvery=7)
    assert options.arguments() == ["--device", "cuda", "--precision", "auto", "--seed", "0", "--threads", "3",
                                   "--iterations", "5", "--augmenter-iterations", "3", "--spacing", "2.5",
                                   "--no-prealign", "--checkpoint-every", "7"]
    defaults = oneshotJobs.TrainingOptions().arguments()
    assert "--iterations" not in defaults and "--spacing" not in defaults and "--no-prealign" not in defaults


def test_unlabelled_folder_lists_engine_scans_only(tmp_path):
    for name in ("b.nrrd", "a.nii.gz", "c.seg.nrrd", "notes.txt", "d.NII"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in oneshotJobs.engineImagesIn(tmp_path)] == ["a.nii.gz", "b.nrrd", "d.NII"]
    with pytest.raises(oneshotJobs.OneShotJobError, match="does not exist"):
        oneshotJobs.engineImagesIn(tmp_path / "missing")


def test_prepared_files_are_what_the_engine_reads(scene, tmp_path):
    store = ModelStore(oneshotJobs.METHOD, tmp_path / "models")
    case = sampleCase.addSampleCase(scene, unlabeledCount=2)
    write_image(tmp_path / "extra.nii.gz", np.zeros((4, 4, 4), dtype=np.float32), np.eye(4))  # a scan on disk
    inputs = oneshotJobs.prepareTraining(store, "brain", case.atlasVolume, case.atlasSegmentation,
                                         case.unlabeledVolumes[:1], [tmp_path / "extra.nii.gz"])
    assert inputs.folder == tmp_path / "jobs" / "oneshot" / "brain"  # each method its own jobs folder
    atlas = read_image(inputs.atlasImage)
    np.testing.assert_array_equal(atlas.array.transpose(2, 1, 0), slicer.util.arrayFromVolume(case.atlasVolume))
    labels = read_labels(inputs.atlasLabels)
    assert labels.shape == atlas.shape and np.allclose(labels.affine, atlas.affine)
    assert set(np.unique(labels.array)) == {0, 1, 3}
    assert read_label_names_json(inputs.labelNames).names() == {1: "blob", 3: "box"}
    assert [p.name for p in inputs.unlabeled] == ["unlabeled_000.nrrd", "unlabeled_001.nii.gz"]
    assert (inputs.folder / "unlabeled_001.nii.gz").read_bytes() == (tmp_path / "extra.nii.gz").read_bytes()
    assert oneshotJobs.TrainingInputs.load(inputs.folder) == inputs
    command = oneshotJobs.trainCommand(inputs, store.modelPath("brain"), oneshotJobs.TrainingOptions(), python="py")
    assert command[:5] == ["py", "-m", "distillseg", "oneshot", "train"]
    assert command[command.index("--out") + 1] == str(store.folder / "brain")
    assert command[-2:] == ["--progress", "jsonl"]


def test_missing_choices_and_lost_inputs_are_one_sentence(scene, tmp_path):
    store = ModelStore(oneshotJobs.METHOD, tmp_path / "models")
    case = sampleCase.addSampleCase(scene, unlabeledCount=1)
    with pytest.raises(oneshotJobs.OneShotJobError, match="at least one unlabelled scan"):
        oneshotJobs.prepareTraining(store, "m", case.atlasVolume, case.atlasSegmentation, [case.atlasVolume])
    with pytest.raises(oneshotJobs.OneShotJobError, match="Select the atlas segmentation"):
        oneshotJobs.prepareTraining(store, "m", case.atlasVolume, None, case.unlabeledVolumes)
    inputs = oneshotJobs.prepareTraining(store, "m", case.atlasVolume, case.atlasSegmentation, case.unlabeledVolumes)
    inputs.unlabeled[0].unlink()
    with pytest.raises(oneshotJobs.OneShotJobError, match="an input of this unfinished training is gone"):
        oneshotJobs.TrainingInputs.load(inputs.folder)
    (inputs.folder / oneshotJobs.INPUTS_FILE).write_text(json.dumps({"folder": 1}))
    with pytest.raises(oneshotJobs.OneShotJobError, match="inputs of this unfinished training are gone"):
        oneshotJobs.TrainingInputs.load(inputs.folder)


def test_a_resumable_job_keeps_no_path_or_name_of_the_users_files(scene, tmp_path):
    """Scans chosen from a folder are kept in the job folder under neutral names (a detached NRRD header as one
    .nrrd), so the job that waits in ~/.oneshotseg/jobs for Resume names none of the user's files."""
    store = ModelStore(oneshotJobs.METHOD, tmp_path / "home" / "models")
    case = sampleCase.addSampleCase(scene, unlabeledCount=1)
    patient = tmp_path / "Doe^John MRN-4471203"
    patient.mkdir()
    scan = read_image(oneshotJobs.volumeFiles.writeVolumeFile(case.unlabeledVolumes[0], tmp_path / "scan.nrrd"))
    write_image(patient / "Roe_Jane.nii.gz", scan.array, scan.affine)
    raw = gzip.decompress((patient / "Roe_Jane.nii.gz").read_bytes())
    with gzip.open(patient / "Roe_Jane.nii.gz", "wb") as handle:  # as gzip and pigz write it: the name inside
        handle.write(raw)
    assert b"Roe_Jane" in (patient / "Roe_Jane.nii.gz").read_bytes()[:64]
    import nrrd

    nrrd.write(str(patient / "Roe_Jane_detached.nhdr"), scan.array.astype(np.float32),
               {"space": "left-posterior-superior", "space directions": (np.diag([-1, -1, 1]) @ scan.affine[:3, :3]).T,
                "space origin": np.diag([-1, -1, 1]) @ scan.affine[:3, 3]}, detached_header=True)
    files = oneshotJobs.engineImagesIn(patient)
    inputs = oneshotJobs.prepareTraining(store, "brain", case.atlasVolume, case.atlasSegmentation, [], files)
    assert [p.name for p in inputs.unlabeled] == ["unlabeled_000.nii.gz", "unlabeled_001.nrrd"]
    np.testing.assert_array_equal(read_image(inputs.unlabeled[0]).array, scan.array)  # the same voxels
    kept = read_image(inputs.unlabeled[1])
    np.testing.assert_allclose(kept.array, scan.array, atol=1e-4)
    np.testing.assert_allclose(kept.affine, scan.affine, atol=1e-4)
    for path in inputs.folder.rglob("*"):
        data = path.read_bytes()
        for text in (str(patient), patient.name, "Roe_Jane", "MRN-4471203"):
            assert text.encode() not in data, f"{path.name} names {text!r}"
