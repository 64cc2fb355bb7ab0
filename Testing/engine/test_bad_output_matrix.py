"""Where the engine writes, tried as a new user would: every case runs the real CLI and is either refused in one
sentence with every existing file left byte-identical, or works and writes what was asked.

The engine never replaces what it did not write (a folder of the user's files, a file of the user's, a read-only
file), never an input (same path, same file by inode, an output folder holding an input, an output inside an
input model folder), names every write failure (read-only folder or file system, a file in the path, a name too
long) with the output's path, and writes every format under the name asked for (``.NII.GZ``, ``.nhdr`` with its
data file). The issue's examples failed before this file's commit: the folder "My Documents" and the input scan
were replaced, and the write-time cases ended in tracebacks.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from bad_input_env import env  # noqa: F401  (the matrix's fixture)
from bad_input_env import matrix_test, nifti, read_only_mount, without_root_privileges
from cli_contract import Invocation
from conftest import REPO
from dicom_files import write_series
from distillseg.common.dicom_seg import DICOM_SEG
from distillseg.common.volume_io import read_labels
from tiny_models import checked, distillseg

OUTPUTS = "outputs"


def _user_folder(tmp, name="My Documents"):
    folder = tmp / name
    folder.mkdir()
    (folder / "thesis.txt").write_text("three years of work\n", encoding="utf-8")
    return folder


def _scan(env, tmp, name="scan.nii.gz"):
    return shutil.copy(env.oneshot.case["scans"][0], tmp / name)


def _segments_on_the_scans_grid(env, path):
    def check():
        labels = read_labels(path)
        assert labels.shape == env.atlas.shape and np.allclose(labels.affine, env.atlas.affine, atol=1e-5)

    return check


def train_into_a_folder_of_user_files(env, tmp):
    folder = _user_folder(tmp)
    return Invocation(env.train(folder), fragments=("is a folder that is not a OneShotSeg", "move its files away"),
                      names=folder)


def restore_into_a_folder_of_user_files(env, tmp):
    folder = _user_folder(tmp)
    return Invocation(env.lap_restore(folder), fragments=("is a folder that is not an IncrementalLap",), names=folder)


def segment_onto_its_input(env, tmp):
    scan = _scan(env, tmp)
    return Invocation(env.segment(scan, scan), fragments=("is also an input",), names=scan)


def lap_segment_onto_its_input(env, tmp):
    frame = shutil.copy(env.frame(), tmp / "frame.png")
    return Invocation(env.lap_segment(frame, frame), fragments=("is also an input",), names=frame)


def segment_onto_a_hard_link_of_its_input(env, tmp):
    scan = _scan(env, tmp)
    os.link(scan, tmp / "result.nii.gz")
    return Invocation(env.segment(scan, tmp / "result.nii.gz"), fragments=("is also an input",),
                      names=tmp / "result.nii.gz")


def segment_onto_a_symbolic_link_to_its_input(env, tmp):
    scan = _scan(env, tmp)
    (tmp / "result.nii.gz").symlink_to(scan)
    return Invocation(env.segment(scan, tmp / "result.nii.gz"), fragments=("is also an input",),
                      names=tmp / "result.nii.gz")


def train_onto_its_atlas(env, tmp):
    atlas = _scan(env, tmp, "atlas.nii.gz")
    return Invocation(env.train(atlas, atlas), fragments=("is also an input",), names=atlas)


def train_into_the_folder_of_its_inputs(env, tmp):
    folder = tmp / "case"
    shutil.copytree(os.path.dirname(env.oneshot.case["atlas"]), folder)
    argv = env.train(folder, folder / "atlas.nii.gz", folder / "atlas_labels.nii.gz", [folder / "scan0.nii.gz"])
    return Invocation(argv, fragments=("the output folder holds the input",), names=folder)


def learn_into_its_model_folder(env, tmp):
    model = shutil.copytree(env.lap.model, tmp / "model")
    argv = ["lap", "learn", "--model", model, "--data", env.lap.demo, "--new-classes", "liver", "--out",
            model / "step 1", "--progress", "none"]
    return Invocation(argv, fragments=("lies inside the model folder",), names=model / "step 1")


def evaluate_report_onto_the_manifest(env, tmp):
    model = shutil.copytree(env.oneshot.model, tmp / "model")
    argv = ["oneshot", "evaluate", "--model", model, "--images", env.oneshot.case["scans"][0], "--labels",
            env.oneshot.case["scan_labels"][0], "--report", model / "manifest.json", "--progress", "none"]
    return Invocation(argv, fragments=("already exists and is not an evaluation report",),
                      names=model / "manifest.json")


def segment_over_a_file_of_the_user(env, tmp):
    mine = nifti(tmp / "my labels.nii.gz", env.labels.array, env.atlas.affine)  # saved by another program
    return Invocation(env.segment(_scan(env, tmp), mine), fragments=("is not a label map written by distillseg",),
                      names=mine)


def segment_over_a_read_only_result(env, tmp):
    out = tmp / "result.nii.gz"
    first = env.segment(_scan(env, tmp), out)
    checked(distillseg(*first))
    out.chmod(0o444)
    return Invocation(first, fragments=("is read-only",), names=out)


def segment_into_a_read_only_folder(env, tmp):
    folder = tmp / "read only"
    folder.mkdir()
    folder.chmod(0o555)
    return Invocation(env.segment(_scan(env, tmp), folder / "x.nii.gz"), fragments=("permission denied",),
                      names=folder / "x.nii.gz", prefix=without_root_privileges())


def segment_onto_a_read_only_disk(env, tmp):
    folder = tmp / "disk"
    folder.mkdir()
    return Invocation(env.segment(_scan(env, tmp), folder / "x.nii.gz"), fragments=("read-only",),
                      names=folder / "x.nii.gz", prefix=read_only_mount(folder))


def restore_onto_a_read_only_disk(env, tmp):
    folder = tmp / "disk"
    folder.mkdir()
    return Invocation(env.lap_restore(folder / "m"), fragments=("read-only",), names=folder / "m",
                      prefix=read_only_mount(folder))


def segment_onto_an_existing_folder(env, tmp):
    (tmp / "labels.nii.gz").mkdir()
    return Invocation(env.segment(_scan(env, tmp), tmp / "labels.nii.gz"), fragments=("is a folder",),
                      names=tmp / "labels.nii.gz")


def restore_onto_an_existing_file(env, tmp):
    (tmp / "model").write_text("notes\n", encoding="utf-8")
    return Invocation(env.lap_restore(tmp / "model"), fragments=("is a file",), names=tmp / "model")


def segment_through_a_file_in_the_path(env, tmp):
    (tmp / "results").write_text("notes\n", encoding="utf-8")
    out = tmp / "results" / "x.nii.gz"
    return Invocation(env.segment(_scan(env, tmp), out), fragments=("is a file, not a folder",), names=out)


def train_with_a_name_too_long_for_its_checkpoint(env, tmp):
    out = tmp / ("m" * 250)  # fits the file system, but "<name>.checkpoint" would not
    return Invocation(env.train(out), fragments=("name is too long",), names=out)


def train_named_like_a_checkpoint(env, tmp):
    return Invocation(env.train(tmp / "m.checkpoint"), fragments=("may not end in '.checkpoint'",),
                      names=tmp / "m.checkpoint")


def lap_segment_two_frames_of_the_same_name(env, tmp):
    frames = tmp / "frames"
    frames.mkdir()
    shutil.copy(env.frame(), frames / "a.png")
    Image.open(env.frame()).convert("RGB").save(frames / "a.jpg")
    return Invocation(env.lap_segment(frames, tmp / "out"), fragments=("two frames of the input",),
                      names=tmp / "out" / "a.png")


def segment_with_an_upper_case_suffix(env, tmp):
    out = tmp / "LABELS.NII.GZ"
    return Invocation(env.segment(_scan(env, tmp), out), exit_code=0, check=_segments_on_the_scans_grid(env, out))


def segment_to_a_detached_nrrd_header(env, tmp):
    out = tmp / "labels.nhdr"

    def check():
        _segments_on_the_scans_grid(env, out)()
        assert "data file: labels.raw.gz" in out.read_text(encoding="latin-1")
        assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("labels")) == ["labels.nhdr",
                                                                                       "labels.raw.gz"]

    return Invocation(env.segment(_scan(env, tmp), out), exit_code=0, check=check)


def segment_again_over_its_own_result(env, tmp):
    out = tmp / "labels [1].seg.nrrd"  # glob characters in the name, too
    checked(distillseg(*env.segment(_scan(env, tmp), out)))
    return Invocation(env.segment(_scan(env, tmp), out), exit_code=0, check=_segments_on_the_scans_grid(env, out))


def _series(env, tmp):
    """The atlas image as a DICOM series in ``tmp/series``."""
    write_series(tmp / "series", env.atlas.array, env.atlas.affine)
    return tmp / "series"


def seg_of_a_nifti_scan(env, tmp):
    out = tmp / "seg.dcm"
    return Invocation(env.segment(_scan(env, tmp), out), fragments=("must reference DICOM source images",
                      "not a DICOM series folder"), names=out)


def seg_inside_its_dicom_series(env, tmp):
    series = _series(env, tmp)
    return Invocation(env.segment(series, series / "seg.dcm"), fragments=("lies inside the input folder",),
                      names=series / "seg.dcm")


def seg_over_a_dicom_file_of_the_user(env, tmp):
    series = _series(env, tmp)
    mine = shutil.copy(sorted(series.iterdir())[0], tmp / "my seg.dcm")
    return Invocation(env.segment(series, mine), fragments=("is not a DICOM SEG written by distillseg",), names=mine)


def seg_without_highdicom(env, tmp):
    shadow = tmp / "no highdicom" / "highdicom"  # an installation where importing highdicom fails
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('highdicom is not installed')\n", encoding="utf-8")
    return Invocation(env.segment(_series(env, tmp), tmp / "seg.dcm"), fragments=("pip install distillseg[dicom]",),
                      names=tmp / "seg.dcm", prefix=("env", f"PYTHONPATH={shadow.parent}{os.pathsep}{REPO}"))


def seg_again_over_its_own_result_in_folder_mode(env, tmp):
    first = env.segment(_series(env, tmp), tmp / "segs", "--format", "dcm-seg")
    checked(distillseg(*first))
    out = tmp / "segs" / "series_seg.dcm"
    return Invocation(first, exit_code=0, check=lambda: DICOM_SEG.recognise(out) or pytest.fail(f"{out} not ours"))


def lap_demo_into_a_folder_of_user_files(env, tmp):
    folder = _user_folder(tmp, "frames")
    argv = ["lap", "demo-data", "--out", folder, "--patients", "1", "--frames-per-patient", "1", "--size", "32", "32",
            "--progress", "none"]
    return Invocation(argv, fragments=("is a folder that is not a folder of demo frames",), names=folder)


def lap_sample_over_a_model(env, tmp):
    model = shutil.copytree(env.lap.model, tmp / "model")
    other = shutil.copytree(env.lap.model, tmp / "another model")
    argv = ["lap", "sample", "--model", model, "--out", other, "--progress", "none"]
    return Invocation(argv, fragments=("is a folder that is not a folder of replayed frames",), names=other)


def export_bundle_into_a_folder_of_user_files(env, tmp):
    folder = _user_folder(tmp)
    return Invocation(["model", "export-bundle", env.lap.model, folder, "--progress", "none"],
                      fragments=("is a folder that is not a MONAI Bundle written by distillseg",), names=folder)


def export_bundle_inside_its_model_folder(env, tmp):
    model = shutil.copytree(env.lap.model, tmp / "model")
    return Invocation(["model", "export-bundle", model, model / "bundle", "--progress", "none"],
                      fragments=("lies inside the model folder",), names=model / "bundle")


def export_bundle_over_a_model(env, tmp):
    other = shutil.copytree(env.lap.model, tmp / "another model")
    return Invocation(["model", "export-bundle", env.lap.model, other, "--progress", "none"],
                      fragments=("is a folder that is not a MONAI Bundle",), names=other)


CASES = {OUTPUTS: [train_into_a_folder_of_user_files, restore_into_a_folder_of_user_files, segment_onto_its_input,
                   lap_segment_onto_its_input, segment_onto_a_hard_link_of_its_input,
                   segment_onto_a_symbolic_link_to_its_input, train_onto_its_atlas,
                   train_into_the_folder_of_its_inputs, learn_into_its_model_folder,
                   evaluate_report_onto_the_manifest, segment_over_a_file_of_the_user,
                   segment_over_a_read_only_result, segment_into_a_read_only_folder, segment_onto_a_read_only_disk,
                   restore_onto_a_read_only_disk, segment_onto_an_existing_folder, restore_onto_an_existing_file,
                   segment_through_a_file_in_the_path, train_with_a_name_too_long_for_its_checkpoint,
                   train_named_like_a_checkpoint, lap_segment_two_frames_of_the_same_name,
                   segment_with_an_upper_case_suffix, segment_to_a_detached_nrrd_header,
                   segment_again_over_its_own_result, lap_demo_into_a_folder_of_user_files,
                   lap_sample_over_a_model, seg_of_a_nifti_scan, seg_inside_its_dicom_series,
                   seg_over_a_dicom_file_of_the_user, seg_without_highdicom,
                   seg_again_over_its_own_result_in_folder_mode, export_bundle_into_a_folder_of_user_files,
                   export_bundle_inside_its_model_folder, export_bundle_over_a_model]}
test_bad_input = matrix_test(CASES)
