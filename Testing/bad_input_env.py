"""What the engine's bad-input matrices share: the tiny inputs and models (``Env``), file makers, and the one test
function every matrix file runs its cases through.

A matrix file defines ``CASES = {group: [case, ...]}`` where a case is ``case(env, tmp_path) -> Invocation`` and
sets ``test_bad_input = matrix_test(CASES)``, importing the ``env`` fixture from here. Every case's group, exit
code and sentence are recorded for ``benchmarks/reliability_report.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest

from cli_contract import Invocation, check_invocation
from distillseg.common.volume_io import read_image, read_labels
from distillseg.contract.frames import read_frame, read_mask, write_index_png
from tiny_models import LAP_TINY, ONESHOT_TINY, lap_fixture, oneshot_fixture


@dataclass
class Env:
    """The session's tiny models and inputs (``tiny_models``), the atlas and its labels as read, and argv makers."""

    oneshot: object
    lap: object
    atlas: object   # the atlas as read (array, affine)
    labels: object

    def train(self, out, atlas=None, labels=None, unlabeled=None, *extra):
        case = self.oneshot.case
        return ["oneshot", "train", "--atlas", atlas or case["atlas"], "--atlas-labels", labels or case["atlas_labels"],
                "--unlabeled", *(unlabeled or case["scans"]), "--out", out, *ONESHOT_TINY, "--progress", "none",
                *extra]

    def segment(self, image, out, *extra, model=None):
        return ["oneshot", "segment", "--model", model or self.oneshot.model, "--input", image, "--output", out,
                "--device", "cpu", "--progress", "none", *extra]

    def lap_train(self, data, out, classes="stomach", *extra):
        return ["lap", "train", "--data", data, "--classes", classes, "--out", out, *LAP_TINY, "--progress", "none",
                *extra]

    def lap_segment(self, frame, out, model=None, *extra):
        return ["lap", "segment", "--model", model or self.lap.model, "--input", frame, "--output", out,
                "--device", "cpu", "--progress", "none", *extra]

    def lap_restore(self, out, model=None, step=0):
        return ["lap", "restore", "--model", model or self.lap.model, "--step", step, "--out", out,
                "--progress", "none"]

    def frame(self) -> Path:
        return sorted((self.lap.demo / "multilabel" / "01").glob("image*.png"))[0]

    def fixtures(self) -> list[Path]:
        """The shared models and inputs: no case may change them."""
        return [self.oneshot.model, Path(self.oneshot.case["atlas"]).parent, self.lap.model, self.lap.demo]


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> Env:
    oneshot = oneshot_fixture(tmp_path_factory)
    return Env(oneshot, lap_fixture(tmp_path_factory), read_image(oneshot.case["atlas"]),
               read_labels(oneshot.case["atlas_labels"]))


def with_option(argv: list, option: str, *values) -> list:
    """``argv`` with ``option``'s value(s) replaced (or appended when it is not there)."""
    argv = list(argv)
    if option in argv:
        at = argv.index(option)
        argv[at + 1: at + 1 + len(values)] = list(values)
    else:
        argv += [option, *values]
    return argv


def nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def copy_model(source: Path, target: Path, change: Callable[[dict], None]) -> Path:
    """A copy of a bundle with its manifest edited by ``change`` (the weights are left as they are)."""
    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    change(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return target


def lap_copy(env: Env, tmp: Path, edit: Callable[[Path], None], source: str = "structures") -> Path:
    """A copy of the demo frames (one structure folder, or a generic images/ masks/ labels.json folder)."""
    data = tmp / "data"
    if source == "structures":
        shutil.copytree(env.lap.demo / "stomach", data / "stomach")
        (data / "SYNTHETIC_DATA.txt").write_text("synthetic", encoding="utf-8")
    else:
        (data / "images").mkdir(parents=True)
        (data / "masks").mkdir()
        mask = np.zeros(read_frame(env.frame()).shape[:2], np.uint8)
        mask[20:40, 20:50] = 1
        shutil.copy(env.frame(), data / "images" / "a.png")
        write_index_png(data / "masks" / "a.png", mask)
        (data / "labels.json").write_text(json.dumps({"1": "stomach"}), encoding="utf-8")
    edit(data)
    return data


def read_frame_mask(path: Path) -> np.ndarray:
    return read_mask(path)


def without_root_privileges() -> tuple[str, ...]:
    """A prefix that makes root obey permission bits like everyone else (root reads and writes any file; without
    the DAC capabilities it does not); empty for other users."""
    if os.geteuid() != 0:
        return ()
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: cannot make a file unreadable or a folder read-only")
    return ("setpriv", "--bounding-set=-dac_override,-dac_read_search")


def read_only_mount(folder: Path) -> tuple[str, ...]:
    """A prefix that runs the CLI with ``folder`` mounted read-only: a bind mount in the private mount namespace of
    an unprivileged user namespace, which nothing outside the CLI's process sees; skips where those are disabled."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("user and mount namespaces are not available: cannot mount a read-only folder")
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'
    return ("unshare", "-rm", "sh", "-c", script, str(folder))


def matrix_test(cases: dict[str, list[Callable]]):
    """The test function of a matrix: one parametrised case per builder, checked by ``check_invocation``."""
    params = [pytest.param(group, build, id=build.__name__.replace("_", "-")) for group, builds in cases.items()
              for build in builds]

    @pytest.mark.parametrize("group, build", params)
    def test_bad_input(group, build, env, tmp_path, record_property):
        invocation: Invocation = build(env, tmp_path)
        invocation.watch = [*invocation.watch, *env.fixtures()]
        check_invocation(invocation, tmp_path, group, record_property)

    return test_bad_input
