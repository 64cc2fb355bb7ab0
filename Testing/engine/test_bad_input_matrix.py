"""The bad-input matrix of the engine: every case runs the real ``distillseg`` CLI in a child process and checks the
contract of DESIGN §3: exit code 2 (user error) or 3 (out of memory), ONE sentence on stderr (the last line, starting
with ``error: ``) that names the file and the problem, no traceback, and nothing half-written (no output, no
temporary file beside it). The few cases whose inputs are odd but valid (paths with spaces and non-ASCII letters, a
tiny scan) must work.

Each case records its group, exit code and sentence (``record_property``) so ``benchmarks/reliability_report.py``
can list the real messages in the report and in the README's troubleshooting section.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import nrrd
from PIL import Image

from bad_input_env import env  # noqa: F401  (the matrix's fixture)
from bad_input_env import copy_model, lap_copy, matrix_test, nifti, read_frame_mask, without_root_privileges
from cli_contract import Invocation
from tiny_models import ONESHOT_TINY
from dicom_files import write_series
from distillseg.contract.frames import read_frame, write_frame, write_index_png
from distillseg.common.volume_io import read_labels, write_image, write_labels

INPUT_FILES, MODELS, MEMORY, INTERRUPTED, DEVICES = "input files", "models", "memory", "interrupted jobs", "devices"


# ------------------------------------------------------------------------------------------------ the cases
def atlas_unreadable(env, tmp):
    atlas = tmp / "atlas.nii.gz"
    shutil.copy(env.oneshot.case["atlas"], atlas)
    atlas.chmod(0)
    return Invocation(env.train(tmp / "m", atlas), fragments=("cannot be read", "permission"), names=atlas,
                      outputs=[tmp / "m"], prefix=without_root_privileges())


def atlas_is_a_folder(env, tmp):
    atlas = tmp / "atlas.nii.gz"
    atlas.mkdir()
    return Invocation(env.train(tmp / "m", atlas), fragments=("is a folder",), names=atlas, outputs=[tmp / "m"])


def atlas_truncated(env, tmp):
    atlas = tmp / "atlas.nii.gz"
    atlas.write_bytes(Path(env.oneshot.case["atlas"]).read_bytes()[:400])
    return Invocation(env.train(tmp / "m", atlas), fragments=("cannot be read as NIfTI",), names=atlas,
                      outputs=[tmp / "m"])


def unlabeled_empty_file(env, tmp):
    scan = tmp / "scan.nrrd"
    scan.write_bytes(b"")
    return Invocation(env.train(tmp / "m", unlabeled=[scan]), fragments=("empty",), names=scan, outputs=[tmp / "m"])


def labels_not_an_image(env, tmp):
    labels = tmp / "labels.nrrd"
    labels.write_text("These are my notes about the atlas, not an image.\n", encoding="utf-8")
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("cannot be read as NRRD",), names=labels,
                      outputs=[tmp / "m"])


def segment_2d_scan(env, tmp):
    scan = nifti(tmp / "slice.nii.gz", env.atlas.array[:, :, 12], env.atlas.affine)
    return Invocation(env.segment(scan, tmp / "out.nii.gz"), fragments=("2-D", "3D scan"), names=scan,
                      outputs=[tmp / "out.nii.gz"])


def segment_4d_scan(env, tmp):
    scan = nifti(tmp / "series.nii.gz", np.stack([env.atlas.array] * 2, axis=-1), env.atlas.affine)
    return Invocation(env.segment(scan, tmp / "out.nii.gz"), fragments=("4-D", "3D scan"), names=scan,
                      outputs=[tmp / "out.nii.gz"])


def atlas_rgb_nifti(env, tmp):
    rgb = np.zeros(env.atlas.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.clip(env.atlas.array * 255, 0, 255).astype(np.uint8)
    atlas = nifti(tmp / "colour atlas.nii.gz", rgb, env.atlas.affine)
    return Invocation(env.train(tmp / "m", atlas), fragments=("RGB", "grayscale"), names=atlas, outputs=[tmp / "m"])


def atlas_rgb_nrrd(env, tmp):
    data = np.repeat(np.clip(env.atlas.array * 255, 0, 255).astype(np.uint8)[None], 3, axis=0)
    atlas = tmp / "colour atlas.nrrd"
    nrrd.write(str(atlas), data, {"kinds": ["RGB-color", "domain", "domain", "domain"], "space": "RAS",
                                  "space directions": np.vstack([np.full(3, np.nan), env.atlas.affine[:3, :3].T]),
                                  "space origin": env.atlas.affine[:3, 3]})
    return Invocation(env.train(tmp / "m", atlas), fragments=("RGB/vector",), names=atlas, outputs=[tmp / "m"])


def segment_infinite_intensity(env, tmp):
    data = env.atlas.array.copy()
    data[3, 4, 5] = np.inf
    scan = nifti(tmp / "scan.nii.gz", data, env.atlas.affine)
    return Invocation(env.segment(scan, tmp / "out.seg.nrrd"), fragments=("NaN or infinite",), names=scan,
                      outputs=[tmp / "out.seg.nrrd"])


def atlas_nan_intensity(env, tmp):
    data = env.atlas.array.copy()
    data[10:12, 10:12, 10:12] = np.nan
    atlas = nifti(tmp / "atlas.nii.gz", data, env.atlas.affine)
    return Invocation(env.train(tmp / "m", atlas), fragments=("NaN",), names=atlas, outputs=[tmp / "m"])


def labels_overflow(env, tmp):
    data = env.labels.array.astype(np.int32)
    data[data == 5] = 70000
    labels = nifti(tmp / "labels.nii.gz", data, env.atlas.affine)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("0..65535", "70000"), names=labels,
                      outputs=[tmp / "m"])


def labels_wrapped_negative(env, tmp):
    data = env.labels.array.astype(np.int16)
    data[data == 5] = np.int16(-1)  # 65535 stored in a signed 16-bit file wraps to -1
    labels = nifti(tmp / "labels.nii.gz", data, env.atlas.affine)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("0..65535", "-1"), names=labels,
                      outputs=[tmp / "m"])


def labels_non_integer(env, tmp):
    labels = nifti(tmp / "labels.nii.gz", env.labels.array * np.float32(0.5), env.atlas.affine)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("non-integer",), names=labels,
                      outputs=[tmp / "m"])


def labels_empty(env, tmp):
    labels = write_labels(tmp / "labels.nrrd", np.zeros(env.atlas.shape, np.uint8), env.atlas.affine)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("empty",), names=labels, outputs=[tmp / "m"])


def labels_other_shape(env, tmp):
    labels = write_labels(tmp / "labels.nii.gz", env.labels.array[:, :, :20], env.atlas.affine)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("not on the atlas image's grid",),
                      names=labels, outputs=[tmp / "m"])


def labels_other_direction(env, tmp):
    flipped = env.atlas.affine @ np.diag([1.0, -1.0, 1.0, 1.0])
    labels = write_labels(tmp / "labels.nii.gz", env.labels.array, flipped)
    return Invocation(env.train(tmp / "m", labels=labels), fragments=("not on the atlas image's grid",),
                      names=labels, outputs=[tmp / "m"])


def evaluate_truth_other_grid(env, tmp):
    moved = env.atlas.affine.copy()
    moved[:3, 3] += 3.0
    truth = write_labels(tmp / "truth.nii.gz", env.labels.array, moved)
    report = tmp / "report.json"
    return Invocation(["oneshot", "evaluate", "--model", env.oneshot.model, "--images", env.oneshot.case["atlas"],
                       "--labels", truth, "--report", report, "--device", "cpu", "--progress", "none"],
                      fragments=("not on the image's grid",), names=truth, outputs=[report])


def nifti_qform_sform_disagree(env, tmp):
    image = nib.Nifti1Image(env.atlas.array, None)
    image.set_qform(env.atlas.affine, code=1)
    moved = env.atlas.affine.copy()
    moved[:3, 3] += [4.0, 0.0, -2.0]
    image.set_sform(moved, code=2)
    atlas = tmp / "atlas.nii.gz"
    nib.save(image, str(atlas))
    return Invocation(env.train(tmp / "m", atlas), fragments=("qform", "sform", "disagree"), names=atlas,
                      outputs=[tmp / "m"])


def segment_tiny_scan(env, tmp):
    scan = write_image(tmp / "tiny.nii.gz", env.atlas.array[10:13, 10:13, 10:13], env.atlas.affine)
    out = tmp / "tiny_seg.nii.gz"

    def check():
        labels = read_labels(out)
        assert labels.shape == (3, 3, 3) and np.allclose(labels.affine, env.atlas.affine, atol=1e-5)

    return Invocation(env.segment(scan, out), exit_code=0, check=check)


def segment_odd_paths(env, tmp):
    folder = tmp / "scans ü é 脳"
    folder.mkdir()
    scan = shutil.copy(env.oneshot.case["scans"][0], folder / "scan 1 ß.nii.gz")
    out = tmp / "out ö 日本" / "seg é.seg.nrrd"

    def check():
        labels = read_labels(out)
        assert labels.shape == env.atlas.shape and np.allclose(labels.affine, env.atlas.affine, atol=1e-5)
        assert set(labels.labels.values) <= {1, 2, 5}

    return Invocation(env.segment(scan, out), exit_code=0, check=check)


def _series(env, folder, affine=None, **options) -> list[Path]:
    """The atlas image as a DICOM series in ``folder`` (files in slice order)."""
    return write_series(folder, env.atlas.array, env.atlas.affine if affine is None else affine, **options)


def _rewrite(files, change) -> None:
    """Edit DICOM files in place: ``change(dataset, k)`` for the file of slice k."""
    import pydicom

    for k, path in enumerate(files):
        dataset = pydicom.dcmread(str(path))
        change(dataset, k)
        dataset.save_as(str(path), enforce_file_format=True)


def dicom_several_series(env, tmp):
    folder = tmp / "export"
    _series(env, folder / "a", description="T1")
    _series(env, folder / "b", description="localizer")
    return Invocation(env.segment(folder, tmp / "out.nii.gz"), fragments=("holds 2 DICOM series", "'localizer', "
                      "24 slices", "choose one with --series-uid UID"), names=folder, outputs=[tmp / "out.nii.gz"])


def dicom_train_series_uid_not_there(env, tmp):
    folder = tmp / "export"
    _series(env, folder / "a")
    _series(env, folder / "b")
    argv = env.train(tmp / "m", folder, None, None, "--series-uid", "1.2.3.4")
    return Invocation(argv, fragments=("none of them is --series-uid 1.2.3.4",), names=folder, outputs=[tmp / "m"])


def dicom_missing_slice(env, tmp):
    files = _series(env, tmp / "series")
    files[9].unlink()
    return Invocation(env.segment(tmp / "series", tmp / "out.seg.nrrd"), fragments=("misses 1 slice",
                      "give the complete series"), names=tmp / "series", outputs=[tmp / "out.seg.nrrd"])


def dicom_gantry_tilt(env, tmp):
    tilted = env.atlas.affine.copy()
    tilted[:3, 2] += [0.0, 0.35, 0.0]  # each slice shifted 0.35 mm along j: a 10° gantry tilt
    _series(env, tmp / "series", tilted)
    return Invocation(env.segment(tmp / "series", tmp / "out.nii.gz"), fragments=("gantry-tilted",),
                      names=tmp / "series", outputs=[tmp / "out.nii.gz"])


def dicom_unequal_spacing(env, tmp):
    files = _series(env, tmp / "series")

    def stretch(dataset, k):  # slices 12.. are 2.6 mm apart instead of 2
        position = [float(v) for v in dataset.ImagePositionPatient]
        dataset.ImagePositionPatient = [f"{position[0]:g}", f"{position[1]:g}",
                                        f"{position[2] + 0.6 * max(0, k - 11):g}"]

    _rewrite(files, stretch)
    return Invocation(env.segment(tmp / "series", tmp / "out.nii.gz"), fragments=("unequally spaced",),
                      names=tmp / "series", outputs=[tmp / "out.nii.gz"])


def dicom_mixed_sizes(env, tmp):
    files = _series(env, tmp / "series", series_uid="1.2.826.0.1.3680043.10.1.7")
    files[0].unlink()
    write_series(tmp / "series" / "other", env.atlas.array[:20, :, :1], env.atlas.affine,
                 series_uid="1.2.826.0.1.3680043.10.1.7")
    return Invocation(env.segment(tmp / "series", tmp / "out.nii.gz"), fragments=("mixes image sizes (24x20, 24x24)",),
                      names=tmp / "series", outputs=[tmp / "out.nii.gz"])


def dicom_with_a_file_that_is_not_dicom(env, tmp):
    _series(env, tmp / "series")
    (tmp / "series" / "notes.txt").write_text("scanned on Tuesday\n", encoding="utf-8")
    return Invocation(env.segment(tmp / "series", tmp / "out.nii.gz"), fragments=("notes.txt, which is not a DICOM "
                      "file",), names=tmp / "series", outputs=[tmp / "out.nii.gz"])


def dicom_folder_without_dicom(env, tmp):
    (tmp / "scans").mkdir()
    return Invocation(env.segment(tmp / "scans", tmp / "out.nii.gz"), fragments=("holds no DICOM files",),
                      names=tmp / "scans", outputs=[tmp / "out.nii.gz"])


def dicom_compressed_without_decoder(env, tmp):
    from pydicom.encaps import encapsulate

    def compress(dataset, k):  # High-Throughput JPEG 2000: neither pydicom nor Pillow decodes it
        dataset.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
        dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"

    _rewrite(_series(env, tmp / "series"), compress)
    return Invocation(env.segment(tmp / "series", tmp / "out.nii.gz"), fragments=("compressed as High-Throughput "
                      "JPEG 2000", "no installed decoder"), names=tmp / "series", outputs=[tmp / "out.nii.gz"])


def _bids(env, root: Path) -> Path:
    """A BIDS dataset of the tiny case's scans (two subjects, one with sessions)."""
    for relative in ("sub-01/anat/sub-01_T1w.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_T1w.nii.gz"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(env.oneshot.case["scans"][0], root / relative)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "test", "BIDSVersion": "1.9.0"}))
    return root


def _segment_bids(env, root: Path, *extra) -> list:
    return ["oneshot", "segment", "--model", env.oneshot.model, "--bids", root, "--device", "cpu", "--progress",
            "none", *extra]


def bids_not_a_dataset(env, tmp):
    root = _bids(env, tmp / "study")
    (root / "dataset_description.json").unlink()
    return Invocation(_segment_bids(env, root), fragments=("not a BIDS dataset", "no dataset_description.json"),
                      names=root, outputs=[root / "derivatives"])


def bids_without_t1w(env, tmp):
    root = _bids(env, tmp / "study")
    for scan in root.rglob("*_T1w.nii.gz"):
        scan.rename(scan.with_name(scan.name.replace("_T1w", "_T2w")))
    return Invocation(_segment_bids(env, root), fragments=("holds no T1-weighted scan",), names=root,
                      outputs=[root / "derivatives"])


def bids_folder_missing(env, tmp):
    return Invocation(_segment_bids(env, tmp / "nowhere"), fragments=("BIDS dataset folder does not exist",),
                      names=tmp / "nowhere", outputs=[tmp / "nowhere"])


def bids_with_a_format(env, tmp):
    root = _bids(env, tmp / "study")
    return Invocation(_segment_bids(env, root, "--format", ".nrrd"), fragments=("--format does not apply with "
                      "--bids",), outputs=[root / "derivatives"])


def train_unlabeled_bids_not_a_dataset(env, tmp):
    case = env.oneshot.case
    argv = ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"], "--unlabeled-bids",
            tmp, "--out", tmp / "m", *ONESHOT_TINY, "--progress", "none"]
    return Invocation(argv, fragments=("not a BIDS dataset",), names=tmp, outputs=[tmp / "m"])


def model_missing(env, tmp):
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=tmp / "no model"),
                      fragments=("model folder does not exist",), names=tmp / "no model", outputs=[tmp / "o.nii.gz"])


def evaluate_lap_model(env, tmp):
    report = tmp / "report.json"
    return Invocation(["oneshot", "evaluate", "--model", env.lap.model, "--images", env.oneshot.case["scans"][0],
                       "--labels", env.oneshot.case["scan_labels"][0], "--report", report, "--progress", "none"],
                      fragments=("IncrementalLap", "not a OneShotSeg"), names=env.lap.model, outputs=[report])


def newer_format_model(env, tmp):
    model = copy_model(env.oneshot.model, tmp / "future model", lambda m: m.update(format_version=99))
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=model),
                      fragments=("format version 99", "newer"), names=model / "manifest.json",
                      outputs=[tmp / "o.nii.gz"])


def tampered_weights(env, tmp):
    model = copy_model(env.oneshot.model, tmp / "altered model", lambda m: None)
    weights = model / "student.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=model),
                      fragments=("SHA-256",), names=weights, outputs=[tmp / "o.nii.gz"])


def manifest_not_json(env, tmp):
    model = copy_model(env.oneshot.model, tmp / "broken model", lambda m: None)
    (model / "manifest.json").write_text('{"method": "oneshot", ', encoding="utf-8")
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", model=model),
                      fragments=("not valid JSON",), names=model / "manifest.json", outputs=[tmp / "o.nii.gz"])


def lap_segment_oneshot_model(env, tmp):
    return Invocation(env.lap_segment(env.frame(), tmp / "o.png", model=env.oneshot.model),
                      fragments=("OneShotSeg", "not a IncrementalLap"), names=env.oneshot.model,
                      outputs=[tmp / "o.png"])


def lap_newer_format(env, tmp):
    model = copy_model(env.lap.model, tmp / "future lap", lambda m: m.update(format_version=2))
    return Invocation(env.lap_segment(env.frame(), tmp / "o.png", model=model), fragments=("newer",),
                      names=model / "manifest.json", outputs=[tmp / "o.png"])


def lap_weights_escape(env, tmp):
    def escape(manifest):
        manifest["weights"]["segmenter"]["file"] = "../segmenter.safetensors"

    model = copy_model(env.lap.model, tmp / "escaping lap", escape)
    shutil.copy(model / "segmenter.safetensors", tmp / "segmenter.safetensors")
    return Invocation(env.lap_segment(env.frame(), tmp / "o.png", model=model),
                      fragments=("'../segmenter.safetensors' is not a plain file name",), names=model / "manifest.json",
                      outputs=[tmp / "o.png"])


def segment_memory_too_small(env, tmp):
    return Invocation(env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz", "--max-memory", "200M"),
                      exit_code=3, fragments=("--max-memory",), outputs=[tmp / "o.nii.gz"])


def train_working_grid_too_large(env, tmp):
    argv = env.train(tmp / "m")
    argv[argv.index("--spacing") + 1] = "0.05"
    return Invocation(argv, exit_code=3, fragments=("working grid", "--spacing"), outputs=[tmp / "m"])


def train_memory_not_a_size(env, tmp):
    return Invocation(env.train(tmp / "m", None, None, None, "--max-memory", "lots"), fragments=("memory size",),
                      outputs=[tmp / "m"])


def lap_grey_16bit_frame(env, tmp):
    frame = tmp / "grey.png"
    Image.fromarray((read_frame(env.frame())[..., 1].astype(np.uint16) * 257)).save(frame)
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("colour (RGB) frame is needed",),
                      names=frame, outputs=[tmp / "o.png"])


def lap_float_frame_with_nan(env, tmp):
    frame = tmp / "float frame.tif"
    data = read_frame(env.frame())[..., 0].astype(np.float32)
    data[5, 5] = np.nan
    Image.fromarray(data, mode="F").save(frame)
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("colour (RGB) frame is needed",),
                      names=frame, outputs=[tmp / "o.png"])


def lap_truncated_jpeg(env, tmp):
    frame = tmp / "frame.jpg"
    write_frame(frame, read_frame(env.frame()))
    frame.write_bytes(frame.read_bytes()[:300])
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("cannot be read as an image",),
                      names=frame, outputs=[tmp / "o.png"])


def lap_empty_frame(env, tmp):
    frame = tmp / "frame.png"
    frame.write_bytes(b"")
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("empty",), names=frame,
                      outputs=[tmp / "o.png"])


def lap_tiny_frame(env, tmp):
    frame = write_frame(tmp / "tiny.png", np.full((4, 6, 3), 120, np.uint8))
    return Invocation(env.lap_segment(frame, tmp / "o.png"), fragments=("too small",), names=frame,
                      outputs=[tmp / "o.png"])


def lap_mask_not_binary(env, tmp):
    def halve(data):
        mask = sorted((data / "stomach").glob("*/mask*.png"))[0]
        write_index_png(mask, (read_frame_mask(mask) > 0).astype(np.uint8) * 128)

    data = lap_copy(env, tmp, halve)
    mask = sorted((data / "stomach").glob("*/mask*.png"))[0]
    return Invocation(env.lap_train(data, tmp / "m"), fragments=("binary mask", "0/255"), names=mask,
                      outputs=[tmp / "m"])


def lap_structure_never_shown(env, tmp):
    def empty(data):
        for mask in (data / "stomach").glob("*/mask*.png"):
            write_index_png(mask, np.zeros_like(read_frame_mask(mask), dtype=np.uint8))

    data = lap_copy(env, tmp, empty)
    return Invocation(env.lap_train(data, tmp / "m"), fragments=("no chosen frame shows the structure 'stomach'",),
                      names=data, outputs=[tmp / "m"])


def lap_colour_mask(env, tmp):
    def colour(data):
        mask = read_frame_mask(data / "masks" / "a.png")
        Image.fromarray(np.stack([mask * 200, mask * 10, mask * 90], -1).astype(np.uint8)).save(data / "masks" / "a.png")

    data = lap_copy(env, tmp, colour, source="folder")
    return Invocation(env.lap_train(data, tmp / "m"), fragments=("colour image",), names=data / "masks" / "a.png",
                      outputs=[tmp / "m"])


def lap_mask_non_integer(env, tmp):
    def fractional(data):
        mask = read_frame_mask(data / "masks" / "a.png").astype(np.float32) * 0.5
        (data / "masks" / "a.png").unlink()
        Image.fromarray(mask, mode="F").save(data / "masks" / "a.tif")

    data = lap_copy(env, tmp, fractional, source="folder")
    return Invocation(env.lap_train(data, tmp / "m"), fragments=("non-integer",), names=data / "masks" / "a.tif",
                      outputs=[tmp / "m"])


def lap_unknown_class_in_folder(env, tmp):
    data = lap_copy(env, tmp, lambda data: None, source="folder")
    return Invocation(env.lap_train(data, tmp / "m", "stomach,tumour"), fragments=("unknown structure name 'tumour'",),
                      names=data / "labels.json", outputs=[tmp / "m"])


def _odd_value(data):
    mask = read_frame_mask(data / "masks" / "a.png")
    mask[0:4, 0:4] = 7
    write_index_png(data / "masks" / "a.png", mask)


def lap_mask_value_not_in_table(env, tmp):
    data = lap_copy(env, tmp, _odd_value, source="folder")
    return Invocation(env.lap_train(data, tmp / "m"),
                      fragments=("holds value 7", "does not name", "add it to labels.json", "--unknown-values skip"),
                      names=data / "masks" / "a.png", outputs=[tmp / "m"])


def lap_every_frame_left_out(env, tmp):
    data = lap_copy(env, tmp, _odd_value, source="folder")
    return Invocation(env.lap_train(data, tmp / "m", "stomach", "--unknown-values", "skip"),
                      fragments=("every chosen frame was left out",), names=data, outputs=[tmp / "m"])


def lap_endoscapes_frame_without_mask(env, tmp):
    data = tmp / "endoscapes"
    (data / "semseg").mkdir(parents=True)
    (data / "train_seg").mkdir()
    shutil.copy(env.frame(), data / "train_seg" / "4_22450.png")
    return Invocation(env.lap_train(data, tmp / "m", "tool"), fragments=("has no mask", "semseg/4_22450.png"),
                      names=data / "train_seg" / "4_22450.png", outputs=[tmp / "m"])


def lap_evaluate_unknown_class(env, tmp):
    report = tmp / "report.json"
    return Invocation(["lap", "evaluate", "--model", env.lap.model, "--data", env.lap.demo, "--classes",
                       "stomach,pancreaz", "--report", report, "--device", "cpu", "--progress", "none"],
                      fragments=("does not know the structure 'pancreaz'",), names=env.lap.model, outputs=[report])


def lap_size_not_multiple_of_32(env, tmp):
    argv = env.lap_train(env.lap.demo, tmp / "m")
    argv[argv.index("--size") + 1: argv.index("--size") + 3] = ["50", "70"]
    return Invocation(argv, fragments=("multiple of 32",), outputs=[tmp / "m"])


def lap_evaluate_odd_paths(env, tmp):
    report = tmp / "reports ü 脳" / "report é.json"

    def check():
        data = json.loads(report.read_text(encoding="utf-8"))
        assert set(data["per_class"]) == {"stomach", "colon"} and data["frames"] == 4

    return Invocation(["lap", "evaluate", "--model", env.lap.model, "--data", env.lap.demo, "--source", "multilabel",
                       "--report", report, "--device", "cpu", "--progress", "none"], exit_code=0, check=check)


def resume_without_checkpoint(env, tmp):
    return Invocation(env.train(tmp / "m", None, None, None, "--resume"), fragments=("no checkpoint to resume from",),
                      names=tmp / "m.checkpoint", outputs=[tmp / "m"])


def damaged_checkpoint(env, tmp):
    (tmp / "m.checkpoint").mkdir()
    (tmp / "m.checkpoint" / "state.json").write_text("{", encoding="utf-8")
    return Invocation(env.train(tmp / "m", None, None, None, "--resume"), fragments=("checkpoint is damaged",),
                      names=tmp / "m.checkpoint", outputs=[tmp / "m"])


def oneshot_another_job(env, tmp):
    return Invocation(env.train(tmp / "m"), fragments=("another job",), names=tmp / "m", outputs=[tmp / "m"],
                      lock=tmp / "m")


def lap_another_job(env, tmp):
    return Invocation(env.lap_train(env.lap.demo, tmp / "m"), fragments=("another job",), names=tmp / "m",
                      outputs=[tmp / "m"], lock=tmp / "m")


def segment_unknown_device(env, tmp):
    argv = env.segment(env.oneshot.case["scans"][0], tmp / "o.nii.gz")
    argv[argv.index("--device") + 1] = "tpu"
    return Invocation(argv, fragments=("Unknown device 'tpu'",), outputs=[tmp / "o.nii.gz"])


def lap_missing_cuda_device(env, tmp):
    argv = env.lap_train(env.lap.demo, tmp / "m")
    argv[argv.index("--device") + 1] = "cuda:99"
    return Invocation(argv, fragments=("cuda:99",), outputs=[tmp / "m"])


CASES = {
    INPUT_FILES: [atlas_unreadable, atlas_is_a_folder, atlas_truncated, unlabeled_empty_file, labels_not_an_image,
                  segment_2d_scan, segment_4d_scan, atlas_rgb_nifti, atlas_rgb_nrrd, segment_infinite_intensity,
                  atlas_nan_intensity, labels_overflow, labels_wrapped_negative, labels_non_integer, labels_empty,
                  labels_other_shape, labels_other_direction, evaluate_truth_other_grid, nifti_qform_sform_disagree,
                  segment_tiny_scan, segment_odd_paths, lap_grey_16bit_frame, lap_float_frame_with_nan,
                  lap_truncated_jpeg, lap_empty_frame, lap_tiny_frame, lap_mask_not_binary,
                  lap_structure_never_shown, lap_colour_mask, lap_mask_non_integer, lap_unknown_class_in_folder,
                  lap_mask_value_not_in_table, lap_every_frame_left_out, lap_endoscapes_frame_without_mask,
                  lap_evaluate_unknown_class, lap_size_not_multiple_of_32, lap_evaluate_odd_paths,
                  dicom_several_series, dicom_train_series_uid_not_there, dicom_missing_slice, dicom_gantry_tilt,
                  dicom_unequal_spacing, dicom_mixed_sizes, dicom_with_a_file_that_is_not_dicom,
                  dicom_folder_without_dicom, dicom_compressed_without_decoder, bids_not_a_dataset,
                  bids_without_t1w, bids_folder_missing, bids_with_a_format, train_unlabeled_bids_not_a_dataset],
    MODELS: [model_missing, evaluate_lap_model, newer_format_model, tampered_weights, manifest_not_json,
             lap_segment_oneshot_model, lap_newer_format, lap_weights_escape],
    MEMORY: [segment_memory_too_small, train_working_grid_too_large, train_memory_not_a_size],
    INTERRUPTED: [resume_without_checkpoint, damaged_checkpoint, oneshot_another_job, lap_another_job],
    DEVICES: [segment_unknown_device, lap_missing_cuda_device],
}
test_bad_input = matrix_test(CASES)
