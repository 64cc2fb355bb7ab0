"""Running the CLI onto a disk that fills up while it writes: a small tmpfs, mounted for the CLI alone.

``run_on_full_disk`` starts this file as a program inside a new user and mount namespace (``unshare -rm``: no root
needed, and nothing outside the namespace sees the mount). There it mounts a tmpfs of ``size`` bytes on the
folder, copies the given files in (what was there before the job), fills the tmpfs with a filler file until only
``free`` bytes are left, runs the CLI, removes the filler and, if asked, runs a second command (e.g. ``--resume``
once there is space again). It prints one JSON object: each run's exit code and stderr, and every file's SHA-256
before and after each run, so the test can check the sentence and that nothing else changed.

Where user namespaces are disabled, ``rlimit_fallback`` gives the same runs under ``RLIMIT_FSIZE`` instead (each
file the CLI writes is cut at the limit: ``EFBIG`` instead of ``ENOSPC``), which covers every write kind but the
one that needs a disk that is full only after the checkpoint (the model).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from cli_contract import snapshot

REPO = Path(__file__).resolve().parents[1]


def namespaces_available() -> bool:
    return bool(shutil.which("unshare")) and subprocess.run(
        ["unshare", "-rm", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/tmp"],
        capture_output=True).returncode == 0


def _cli(argv: list[str], limit: int | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    limit_files = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))) if limit else None
    done = subprocess.run([sys.executable, "-m", "distillseg", *argv], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600, preexec_fn=limit_files)
    return {"code": done.returncode, "stderr": done.stderr}


def _listing(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): digest for path, digest in snapshot(folder).items()
            if path.name != "filler"}


def _inside(spec: dict) -> dict:
    """The runs, inside the namespace (or, with ``limit``, under ``RLIMIT_FSIZE``)."""
    folder = Path(spec["folder"])
    if not spec.get("limit"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec['size']}", "tmpfs", str(folder)], check=True)
    for source, name in spec["files"]:
        shutil.copy(source, folder / name)
    report = {"before": _listing(folder)}
    if not spec.get("limit"):
        with open(folder / "filler", "wb") as filler:
            stats = os.statvfs(folder)
            os.posix_fallocate(filler.fileno(), 0, max(stats.f_bavail * stats.f_frsize - spec["free"], 1))
    report["first"] = _cli(spec["argv"], spec.get("limit"))
    (folder / "filler").unlink(missing_ok=True)
    report["after"] = _listing(folder)
    if spec.get("then"):
        report["then"] = _cli(spec["then"])
        report["finally"] = _listing(folder)
    return report


def run_on_full_disk(folder: Path, argv: list, size: int, free: int, files=(), then=None,
                     limit: int | None = None) -> dict:
    """Run ``argv`` with ``folder`` on a ``size``-byte tmpfs holding ``files`` ((source, name) pairs) and ``free``
    bytes left, then ``then`` (if any) with the space back; or, with ``limit``, under that RLIMIT_FSIZE."""
    spec = {"folder": str(folder), "argv": list(map(str, argv)), "size": size, "free": free, "limit": limit,
            "files": [(str(s), n) for s, n in files], "then": list(map(str, then)) if then else None}
    if limit:
        return _inside(spec)
    done = subprocess.run(["unshare", "-rm", sys.executable, __file__, json.dumps(spec)], capture_output=True,
                          text=True, timeout=1200, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


if __name__ == "__main__":
    print(json.dumps(_inside(json.loads(sys.argv[1]))))
