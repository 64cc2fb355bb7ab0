"""Fuzzing the command line: hypothesis makes option values, manifest edits and image-header edits, and every one
runs through the real CLI in a child process against the contract (``cli_contract``): exit 0 with a valid
output, or exit 2/3/130 with one ``error:`` sentence; never a traceback; every file that existed before (inputs,
models, the test's folder) byte-identical.

Budget: CI runs these in under 3 minutes on 2 cores (see the commit that measured it). ``derandomize=True`` makes
the examples the same on every run, so the time is stable and a failure reproduces; ``deadline=None`` because one
child process takes seconds. Valid values are drawn from what runs in seconds (one training step, tiny scans).
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cli_contract import REFUSAL_CODES, assert_one_sentence, changes, snapshot
from distillseg.common.bundle import load_bundle
from distillseg.common.volume_io import read_image, read_labels, write_image
from distillseg.contract.frames import read_mask
from tiny_models import LAP_TINY, distillseg, lap_fixture, oneshot_fixture

FUZZ = settings(derandomize=True, deadline=None, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# What people type where a number is expected, and what programs write.
WORDS = st.sampled_from(["", " ", "abc", "2mm", "1e3", "0x10", "½", "nan", "inf", "-inf", "-0", "1,5", "3 ", "--",
                         "auto", "whole", "1e-300", "007", "+4", "ⅷ", "٣", "9" * 30])
NUMBERS = st.one_of(st.integers(-3, 64), st.integers(-2**70, 2**70), st.floats(width=32)).map(str)
VALUES = st.one_of(NUMBERS, WORDS, st.text(max_size=5))


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory), lap_fixture(tmp_path_factory)


def _scratch(tmp_path_factory) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp(), prefix="fuzz "))


def _run(argv, folders, check) -> None:
    """Run the CLI and hold it to the contract; ``check()`` validates the output of a run that worked."""
    before = snapshot(*folders)
    result = distillseg(*argv, timeout=300)
    event(f"exit {result.returncode}")  # shown by pytest --hypothesis-show-statistics
    if result.returncode == 0:
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        check()
    else:
        assert_one_sentence(result, REFUSAL_CODES)
    changed = changes(before, snapshot(*folders))
    if result.returncode == 0:  # the outputs are new: nothing else may have changed
        changed = [c for c in changed if not c.startswith("new ")]
    assert not changed, changed


# ------------------------------------------------------------------------------------------------ option values
def _segment_case(fixtures, folder):
    oneshot, _ = fixtures
    out = folder / "labels.nii.gz"
    argv = ["oneshot", "segment", "--model", oneshot.model, "--input", oneshot.case["scans"][0], "--output", out,
            "--device", "cpu", "--progress", "none"]
    return argv, lambda: read_labels(out)


def _train_case(fixtures, folder):
    oneshot, _ = fixtures
    case = oneshot.case
    argv = ["oneshot", "train", "--atlas", case["atlas"], "--atlas-labels", case["atlas_labels"], "--unlabeled",
            *case["scans"], "--out", folder / "m", "--iterations", "1", "--augmenter-iterations", "0",
            "--refine-iterations", "0", "--spacing", "atlas", "--no-prealign", "--device", "cpu", "--max-memory", "3G",
            "--progress", "none"]
    return argv, lambda: load_bundle(folder / "m", "oneshot")


def _lap_case(fixtures, folder):
    _, lap = fixtures
    argv = ["lap", "train", "--data", lap.demo, "--classes", "stomach", "--out", folder / "m", *LAP_TINY,
            "--iterations", "1", "--progress", "none"]
    return argv, lambda: load_bundle(folder / "m", "lap")


def _restore_case(fixtures, folder):
    _, lap = fixtures
    argv = ["lap", "restore", "--model", lap.model, "--step", "0", "--out", folder / "m", "--progress", "none"]
    return argv, lambda: load_bundle(folder / "m", "lap")


# (case, option, number of values): options whose valid values all run in seconds on the tiny inputs
OPTIONS = [(_segment_case, "--sliding-window", 3), (_segment_case, "--max-memory", 1), (_segment_case, "--threads", 1),
           (_segment_case, "--format", 1), (_segment_case, "--refine-iterations", 1),
           (_train_case, "--spacing", 1), (_train_case, "--patch-size", 3), (_train_case, "--ct-window", 2),
           (_train_case, "--lr", 1), (_train_case, "--mix-beta", 1), (_train_case, "--appearance", 1),
           (_train_case, "--batch-size", 1), (_train_case, "--seed", 1), (_train_case, "--deep-supervision", 1),
           (_train_case, "--checkpoint-every", 1), (_train_case, "--seg-weight", 1),
           (_lap_case, "--classes", 1), (_lap_case, "--patients", 1), (_lap_case, "--lr", 1),
           (_lap_case, "--checkpoint-every", 1), (_restore_case, "--step", 1)]


@settings(FUZZ, max_examples=15)
@given(choice=st.sampled_from(OPTIONS), data=st.data())
def test_generated_option_values_keep_the_contract(fixtures, tmp_path_factory, choice, data):
    case, option, count = choice
    values = data.draw(st.lists(VALUES, min_size=max(count - 1, 0), max_size=count + 1), label=option)
    folder = _scratch(tmp_path_factory)
    argv, check = case(fixtures, folder)
    argv = [*argv, option, *values] if option not in argv else \
        [*argv[:argv.index(option)], option, *values, *argv[argv.index(option) + 2:]]
    oneshot, lap = fixtures
    _run(argv, [folder, oneshot.model, lap.model], check)


# ------------------------------------------------------------------------------------------------ manifests
def _paths(value, prefix=()):
    """Every key path of a JSON document (lists of numbers count as one value)."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list) and not all(isinstance(v, (int, float)) for v in value):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(width=32),
                                     st.text(max_size=4)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                       max_size=2), max_leaves=4)


@settings(FUZZ, max_examples=8)
@given(method=st.sampled_from(["oneshot", "lap"]), data=st.data())
def test_generated_manifest_edits_keep_the_contract(fixtures, tmp_path_factory, method, data):
    oneshot, lap = fixtures
    folder = _scratch(tmp_path_factory)
    model = shutil.copytree(oneshot.model if method == "oneshot" else lap.model, folder / "model")
    manifest = json.loads((model / "manifest.json").read_text(encoding="utf-8"))
    path = data.draw(st.sampled_from([p for p in _paths(manifest) if p and p[0] != "history"]), label="key")
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans(), label="delete"):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(JSON_VALUES, label="value")
    (model / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if method == "oneshot":
        out = folder / "labels.nii.gz"
        argv = ["oneshot", "segment", "--model", model, "--input", oneshot.case["scans"][0], "--output", out]
        check = lambda: read_labels(out)  # noqa: E731
    else:
        frame = sorted((lap.demo / "multilabel" / "01").glob("image*.png"))[0]
        out = folder / "labels.png"
        argv = ["lap", "segment", "--model", model, "--input", frame, "--output", out]
        check = lambda: read_mask(out)  # noqa: E731
    _run([*argv, "--device", "cpu", "--progress", "none"], [folder, oneshot.model, lap.model], check)


# ------------------------------------------------------------------------------------------------ image headers
NIFTI_FIELDS = ["dim", "pixdim", "datatype", "bitpix", "vox_offset", "scl_slope", "scl_inter", "qform_code",
                "sform_code", "quatern_b", "qoffset_x", "srow_x", "srow_z", "sizeof_hdr", "magic", "dim_info"]
HEADER_NUMBERS = st.sampled_from([0, 1, -1, 2, 3, 4, 7, 16, 64, 255, 352, 1e-9, 1e9, 32767, -32768, float("nan"),
                                  float("inf")])


def _nifti_edit(source: Path, target: Path, field: str, values: list) -> None:
    image = nib.load(str(source))
    header = np.frombuffer(image.header.binaryblock, dtype=nib.nifti1.header_dtype).copy()
    current = header[field][0]
    if np.ndim(current):
        current = np.array(current).copy()
        current[: len(values)] = np.array(values[: current.size], dtype=np.float64).astype(current.dtype,
                                                                                          casting="unsafe")
    else:
        current = np.array(values[0] if values else 0, dtype=np.float64).astype(header[field].dtype, casting="unsafe")
    header[field][0] = current
    data = np.asarray(image.dataobj, dtype=np.float32).tobytes(order="F")
    target.write_bytes(header.tobytes() + bytes(4) + data)


NRRD_LINES = ["type: ", "dimension: ", "sizes: ", "space: ", "space directions: ", "space origin: ", "kinds: ",
              "encoding: ", "endian: ", "spacings: ", "data file: "]
NRRD_WORDS = st.sampled_from(["float", "uint8", "int64", "block", "3", "4", "2", "0", "-1", "24 24 24", "24 24",
                              "99999 99999 99999", "(1,0,0) (0,1,0) (0,0,1)", "(1,0) (0,1)", "none (1,0,0) (0,1,0)",
                              "(nan,0,0) (0,1,0) (0,0,1)", "(0,0,0) (0,0,0) (0,0,0)", "(1,2,3)", "(1,2)",
                              "left-posterior-superior", "RAS", "3D-right-handed", "domain domain domain",
                              "gzip", "raw", "bzip2", "ascii", "big", "little", "1 1 1", "nan nan nan",
                              "../../etc/hostname", "", "((", "1e400"])


def _nrrd_edit(source: Path, target: Path, line: str, word: str, drop: bool) -> None:
    data, header = nrrd.read(str(source))
    buffer = io.BytesIO()
    nrrd.write(buffer, data, header)
    text, _, payload = buffer.getvalue().partition(b"\n\n")
    lines = [l for l in text.decode("ascii").splitlines() if not l.startswith(line)]
    if not drop:
        lines.append(line + word)
    target.write_bytes("\n".join(lines).encode("utf-8") + b"\n\n" + payload)


def _png_edit(source: Path, target: Path, field: int, value: int, cut: int) -> None:
    raw = bytearray(source.read_bytes())
    ihdr = bytearray(raw[16:29])  # width, height, bit depth, colour type, compression, filter, interlace
    if field < 2:
        ihdr[field * 4: field * 4 + 4] = struct.pack(">I", value & 0xFFFFFFFF)
    else:
        ihdr[6 + field] = value & 0xFF
    raw[16:29] = ihdr
    raw[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr)) & 0xFFFFFFFF)
    target.write_bytes(bytes(raw[: len(raw) - cut]))


@settings(FUZZ, max_examples=12)
@given(kind=st.sampled_from(["nifti", "nrrd", "png"]), data=st.data())
def test_generated_header_edits_keep_the_contract(fixtures, tmp_path_factory, kind, data):
    oneshot, lap = fixtures
    folder = _scratch(tmp_path_factory)
    if kind == "png":
        frame = sorted((lap.demo / "multilabel" / "01").glob("image*.png"))[0]
        image = folder / "frame.png"
        _png_edit(frame, image, data.draw(st.integers(0, 6), label="field"),
                  data.draw(st.sampled_from([0, 1, 2, 3, 4, 6, 8, 16, 255, 40000, 2**31, 2**32 - 1]), label="value"),
                  data.draw(st.sampled_from([0, 0, 12, 100]), label="cut"))
        out = folder / "labels.png"
        argv = ["lap", "segment", "--model", lap.model, "--input", image, "--output", out]
        check = lambda: read_mask(out)  # noqa: E731
    else:
        image = folder / ("scan.nii" if kind == "nifti" else "scan.nrrd")
        if kind == "nifti":
            _nifti_edit(oneshot.case["scans"][0], image, data.draw(st.sampled_from(NIFTI_FIELDS), label="field"),
                        data.draw(st.lists(HEADER_NUMBERS, min_size=1, max_size=8), label="values"))
        else:
            nrrd_source = folder / "source.nrrd"
            scan = read_image(oneshot.case["scans"][0])
            write_image(nrrd_source, scan.array, scan.affine)
            _nrrd_edit(nrrd_source, image, data.draw(st.sampled_from(NRRD_LINES), label="field"),
                       data.draw(NRRD_WORDS, label="value"), data.draw(st.booleans(), label="drop"))
            nrrd_source.unlink()
        out = folder / "labels.nii.gz"
        argv = ["oneshot", "segment", "--model", oneshot.model, "--input", image, "--output", out]
        check = lambda: read_labels(out)  # noqa: E731
    _run([*argv, "--device", "cpu", "--progress", "none"], [folder, oneshot.model, lap.model], check)
