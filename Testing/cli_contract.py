"""The engine's command-line contract (DESIGN §3), checked on the real ``distillseg`` CLI in a child process.

A run either works (exit 0, with a valid output) or is refused: exit code 2 (user error), 3 (out of memory) or 130
(cancelled), ONE sentence as the last stderr line (``error: <sentence>.``), no traceback, and nothing changed:
every file that existed before is byte-identical, no output and no temporary file beside it appeared (the
``.<name>.lock`` file of ``OutputLock`` may stay: it is an empty lock, by design).

``Invocation`` + ``check_invocation`` run one case of a bad-input matrix and record its group, exit code and
sentence (``record_property``) for ``benchmarks/reliability_report.py``; ``assert_refusal_or_success`` is the same
contract for generated (fuzzed) runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from distillseg.contract.atomic import OutputLock
from tiny_models import distillseg

REFUSAL_CODES = (2, 3, 130)


@dataclass
class Invocation:
    """One CLI run and what it must do. ``names``: the path the sentence must name (None for option errors);
    ``outputs``: paths that must not exist afterwards; ``check``: assertions for a case that must work;
    ``prefix``: a command to run the CLI under (e.g. ``setpriv``); ``lock``: an output the test holds the
    ``OutputLock`` of while the CLI runs (another job writing it); ``watch``: folders besides the test's own whose
    files must stay byte-identical."""

    argv: list
    exit_code: int = 2
    fragments: tuple[str, ...] = ()
    names: Path | None = None
    outputs: list[Path] = field(default_factory=list)
    prefix: tuple[str, ...] = ()
    check: Callable[[], None] | None = None
    lock: Path | None = None
    watch: list[Path] = field(default_factory=list)


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot(*folders: Path) -> dict[Path, str]:
    """Every file under ``folders`` (recursively; a folder that is a file counts as itself) with its SHA-256;
    folders are listed with the value ``"<folder>"`` so a new empty folder shows too."""
    files: dict[Path, str] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files[folder] = _digest(folder)
            continue
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or path.is_file():
                files[path] = "<link>" if path.is_symlink() else _digest(path)
            elif path.is_dir():
                files[path] = "<folder>"
    return files


def changes(before: dict[Path, str], after: dict[Path, str]) -> list[str]:
    """What differs between two snapshots, ignoring the empty ``.<name>.lock`` files of ``OutputLock``."""
    lock = re.compile(r"^\..*\.lock$")
    changed = [f"changed {p}" for p in before if p in after and after[p] != before[p]]
    changed += [f"removed {p}" for p in before if p not in after]
    changed += [f"new {p}" for p in after if p not in before and not lock.match(p.name)]
    return changed


def last_error_line(stderr: str) -> tuple[str, list[str]]:
    """(the last non-empty stderr line, all non-empty lines)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else ""), lines


def assert_one_sentence(result: subprocess.CompletedProcess, codes=REFUSAL_CODES) -> str:
    """The refusal is one ``error:`` line, the last one, one sentence, with an allowed exit code; returns it."""
    message, lines = last_error_line(result.stderr)
    assert result.returncode in codes, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    assert message.startswith("error: ") and [l for l in lines if l.startswith("error: ")] == [message], lines
    sentence = message[len("error: "):]
    assert sentence.endswith(".") and not re.search(r"\. [A-Z]", sentence), sentence  # no second sentence
    return sentence


def check_invocation(invocation: Invocation, tmp_path: Path, group: str, record_property) -> None:
    """Run one matrix case and check it against the contract, recording group, exit code and sentence."""
    before = snapshot(tmp_path, *invocation.watch)
    with OutputLock(invocation.lock) if invocation.lock else contextlib.nullcontext():
        result = distillseg(*invocation.argv, prefix=invocation.prefix)
    message, _ = last_error_line(result.stderr)
    record_property("group", group)
    record_property("exit_code", result.returncode)
    record_property("message", message.replace(str(tmp_path), "<tmp>"))
    if invocation.exit_code == 0:
        assert result.returncode == 0, result.stderr[-3000:]
        invocation.check()
        return
    assert result.returncode == invocation.exit_code, result.stderr[-3000:]
    sentence = assert_one_sentence(result, (invocation.exit_code,))
    if invocation.names is not None:
        assert str(invocation.names) in sentence, sentence
    for fragment in invocation.fragments:
        assert fragment in sentence, sentence
    for output in invocation.outputs:
        assert not output.exists(), output
    changed = changes(before, snapshot(tmp_path, *invocation.watch))
    assert not changed, changed
