"""Fault injection: a disk that fills up while the engine writes, for each kind of write (a segmentation, a
restored model, a training's checkpoint, a training's model), through the real CLI (``full_disk``: a small tmpfs
mounted for the CLI alone, or a file-size limit where namespaces are off).

Each run must end in the one sentence that names the output and says the disk is full, with exit code 2, and
nothing else changed: the files that were on the disk before are byte-identical, no half-written file or
temporary remains (nor the ``.<name>.lock`` file of the job), and only what the engine keeps by design stays (a
training's last complete checkpoint, which ``--resume`` then finishes from once there is space). Before this file's commit these
writes ended in tracebacks (``OSError``, or safetensors' own ``SafetensorError``).
"""

from __future__ import annotations

import os

import pytest

from full_disk import namespaces_available, run_on_full_disk
from tiny_models import LAP_TINY, lap_fixture, oneshot_fixture

FULL_DISK = "full disk"
# DISTILLSEG_TEST_NO_TMPFS=1 runs the file-size-limit variant (what machines without user namespaces get) here too.
USE_TMPFS = namespaces_available() and not os.environ.get("DISTILLSEG_TEST_NO_TMPFS")


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return oneshot_fixture(tmp_path_factory), lap_fixture(tmp_path_factory)


def _segmenter_bytes(lap) -> int:
    """The size of the lap model's weights: a checkpoint holds about three times that (weights, AdamW moments)."""
    return (lap.model / "segmenter.safetensors").stat().st_size


def _lap_train(lap, out, iterations):
    argv = ["lap", "train", "--data", lap.demo, "--classes", "stomach", "--out", out, *LAP_TINY, "--progress", "none"]
    at = argv.index("--iterations")
    return [*argv[:at + 1], str(iterations), *argv[at + 2:]]


def _case(kind, oneshot, lap, folder):
    """(argv, output the sentence names, tmpfs size, bytes left free, file-size limit, kept, resume argv)."""
    weights = _segmenter_bytes(lap)
    if kind == "segmentation":  # an uncompressed label map of 24³ voxels: 14 kB, 8 kB of room
        argv = ["oneshot", "segment", "--model", oneshot.model, "--input", oneshot.case["scans"][0], "--output",
                folder / "labels.nii", "--device", "cpu", "--progress", "none"]
        return argv, folder / "labels.nii", 1 << 20, 8 << 10, 8 << 10, set(), None
    if kind == "restore":  # the model's weights do not fit: half of them do
        argv = ["lap", "restore", "--model", lap.model, "--step", "0", "--out", folder / "m", "--progress", "none"]
        return argv, folder / "m", 2 * weights, weights // 2, weights // 2, set(), None
    if kind == "checkpoint":  # the first checkpoint (about 3x the weights) does not fit
        return (_lap_train(lap, folder / "m", 2), folder / "m.checkpoint", 4 * weights, 3 * weights // 2,
                3 * weights // 2, set(), None)
    # the model: the checkpoint at the last step fits, the model after it does not; --resume then finishes
    argv = _lap_train(lap, folder / "m", 1)
    kept = {"m.checkpoint", "m.checkpoint/state.json", "m.checkpoint/state.safetensors"}
    return argv, folder / "m", 5 * weights, 7 * weights // 2, None, kept, [*argv, "--resume"]


@pytest.mark.parametrize("kind", ["segmentation", "restore", "checkpoint", "model"])
def test_a_disk_filling_up_during_a_write_is_one_sentence_and_changes_nothing(fixtures, kind, tmp_path,
                                                                              record_property):
    oneshot, lap = fixtures
    folder = tmp_path / "disk"
    folder.mkdir()
    argv, output, size, free, limit, kept, resume = _case(kind, oneshot, lap, folder)
    if not USE_TMPFS and limit is None:
        pytest.skip("needs a tmpfs (user namespaces are off): a file-size limit cannot fill the disk after the "
                    "checkpoint only")
    before_files = [(oneshot.case["atlas"], "my scan.nii.gz"), (lap.model / "manifest.json", "notes.json")]
    report = run_on_full_disk(folder, argv, size, free, before_files, resume,
                              limit=None if USE_TMPFS else limit)
    stderr = report["first"]["stderr"]
    lines = [line for line in stderr.splitlines() if line.strip()]
    record_property("group", FULL_DISK)
    record_property("exit_code", report["first"]["code"])
    record_property("message", (lines[-1] if lines else "").replace(str(tmp_path), "<tmp>"))
    problem = "the disk is full" if USE_TMPFS else "larger than this disk or your file-size limit allows"
    assert report["first"]["code"] == 2 and "Traceback" not in stderr, stderr[-3000:]
    assert [l for l in lines if l.startswith("error: ")] == [lines[-1]], lines
    assert lines[-1].startswith(f"error: {output}: cannot be written: ") and problem in lines[-1], lines[-1]
    assert {k: v for k, v in report["after"].items() if k in report["before"]} == report["before"]
    assert set(report["after"]) - set(report["before"]) == kept, sorted(report["after"])
    if resume:  # with space again, --resume finishes from the checkpoint the full disk left
        assert report["then"]["code"] == 0, report["then"]["stderr"][-3000:]
        assert {"m/manifest.json", "m/segmenter.safetensors"} <= set(report["finally"])
        assert not any(name.startswith("m.checkpoint") for name in report["finally"])
