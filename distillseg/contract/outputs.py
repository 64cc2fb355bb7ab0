"""What the engine may write where: it never replaces anything it did not write itself, and never an input.

Every output has a *kind* (``OutputKind``): a description for sentences and the test that recognises the engine's
own earlier output of that kind at a path. An existing file or folder is replaced only when it is recognised:

- files carry a mark, ``distillseg-output:<kind>``, within their first 64 KiB (once un-gzipped): in a NIfTI
  header's ``descrip``, a NRRD header field, a PNG text chunk, the first key of a JSON report (``marked_file``);
- a model bundle is a folder holding ``manifest.json`` of the same method, the files it lists and at most files
  carrying a mark (reports kept beside the model); a checkpoint holds only ``state.json`` and
  ``state.safetensors``; a folder of generated data holds a marker file that names its kind (``marked_folder``);
  an empty folder may always be used.

The writers themselves (``write_labels``, ``write_index_png``, …) replace any file by default (``ANY_FILE``: tests
and the Slicer module export files with them); the engine's verbs check every output with its strict kind before
any work and pass that kind on, so the same rule is checked again just before each rename.

``check_target`` applies these rules (and refuses paths that cannot be written: a folder where a file goes, a file
in the path, a name too long, a read-only file) before any work; ``check_apart`` refuses an output that is an input
(same path or same file by inode), an output folder holding an input or lying inside an input model folder;
``check_outside`` an output inside an input folder that is read as a whole (a DICOM series).
All raise ``UserError`` with one sentence naming the path and what to do.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from distillseg.contract.errors import file_error, write_error
from distillseg.contract.manifest import method_title
from distillseg.contract.paths import CHECKPOINT_SUFFIX, checkpoint_path, is_checkpoint_name

MARK = "distillseg-output:"
_MARK_WINDOW = 1 << 16  # bytes searched for a mark (after un-gzipping): every header the engine writes fits


@dataclass(frozen=True)
class OutputKind:
    """What is written at an output path: ``description`` ("a label map") and ``recognise(path)``, which says
    whether an existing path holds the engine's own earlier output of this kind (and may be replaced)."""

    description: str
    recognise: Callable[[Path], bool]
    folder: bool = False


def mark(token: str) -> str:
    """The text a file of kind ``token`` carries: ``distillseg-output:<token>``."""
    return MARK + token


def _first_bytes(path: Path) -> bytes:
    with open(path, "rb") as handle:
        head = handle.read(_MARK_WINDOW)
    if head[:2] == b"\x1f\x8b":  # gzip: look inside
        try:
            return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, _MARK_WINDOW)
        except zlib.error:
            return b""
    return head


def carries_mark(path: str | os.PathLike, token: str = "") -> bool:
    """True when the file at ``path`` carries ``mark(token)`` (with no ``token``: any mark) within its first
    64 KiB."""
    try:
        return mark(token).encode("ascii") in _first_bytes(Path(path))
    except OSError:
        return False


def marked_file(description: str, token: str) -> OutputKind:
    """A file kind recognised by its mark."""
    return OutputKind(description, lambda path: carries_mark(path, token))


def marked_folder(description: str, token: str, marker: str) -> OutputKind:
    """A folder kind recognised by its marker file ``marker`` carrying ``mark(token)``."""
    return OutputKind(description, lambda path: carries_mark(Path(path) / marker, token), folder=True)


def _entries(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()}


def bundle_kind(method: str) -> OutputKind:
    """A model bundle of ``method``, as an output: it may replace only a bundle of the same method."""
    title = method_title(method)
    article = "an" if title[:1] in "AEIU" else "a"  # "an IncrementalLap", but "a OneShotSeg" ("one" sounds "wun")
    return bundle_folder(method, f"{article} {title} model")


def bundle_folder(method: str, description: str) -> OutputKind:
    """A model bundle of ``method``: ``manifest.json`` of that method, the files it lists, and at most files the
    engine wrote beside them (the Slicer module keeps a new version's evaluation reports in its folder)."""

    def recognise(folder: Path) -> bool:
        folder = Path(folder)
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
            listed = {entry["file"] for entry in manifest["weights"].values()}
            others = _entries(folder) - {"manifest.json", *listed}
            return manifest["method"] == method and all(carries_mark(folder / name) for name in others)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return False

    return OutputKind(description, recognise, folder=True)


NEW_FILE = OutputKind("a file", lambda path: False)  # written only where nothing is (a cache's missing entry)
# What the writers replace when called as a library (tests, the Slicer module exporting its frames): any file. The
# engine's verbs pass the strict kinds above instead, so their outputs never replace a file of the user's.
ANY_FILE = OutputKind("a file", lambda path: True)
CHECKPOINT = OutputKind("a training checkpoint",
                        lambda folder: (Path(folder) / "state.json").is_file()
                        and _entries(Path(folder)) <= {"state.json", "state.safetensors"}, folder=True)


def write_json(handle, data: dict, token: str) -> None:
    """Write ``data`` as JSON with ``{"written_by": mark(token)}`` first, so the file is recognised as ours."""
    json.dump({"written_by": mark(token), **data}, handle, indent=1, allow_nan=True)
    handle.write("\n")


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _read_only(folder: Path) -> bool:
    """True when ``folder`` lies on a file system mounted read-only."""
    return hasattr(os, "statvfs") and bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if os.path.lexists(parent):
            return parent
    return Path(".")


def check_target(path: str | os.PathLike, kind: OutputKind, extra_name: int = 0) -> Path:
    """Refuse, in one sentence, an output path that cannot or must not be written (see the module docstring).

    ``extra_name``: characters a name beside the output will add (``.checkpoint``), so a name that only the
    checkpoint would make too long is refused before hours of training rather than at the first checkpoint.
    """
    path = Path(path)
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise file_error(path, f"cannot be written: {ancestor} is a file, not a folder; choose another path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise write_error(path, OSError(errno.EROFS if _read_only(ancestor) else errno.EACCES, ""))
    if len(path.name.encode("utf-8")) + extra_name > _name_max(ancestor):
        raise file_error(path, "cannot be written: the name is too long for this file system; choose a shorter "
                               "name")
    if not os.path.lexists(path):
        return path
    if kind.folder:
        if not path.is_dir():
            raise file_error(path, f"is a file; give the name of a folder to write {kind.description} in")
        if any(path.iterdir()) and not kind.recognise(path):
            raise file_error(path, f"is a folder that is not {kind.description} written by distillseg (it holds "
                                   "other files); choose another folder, or move its files away first")
        return path
    if path.is_dir():
        raise file_error(path, "is a folder; give the name of a file to write")
    if not kind.recognise(path):
        raise file_error(path, f"already exists and is not {kind.description} written by distillseg; choose "
                               "another name, or move or delete that file first")
    if not os.lstat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise file_error(path, "is read-only; make it writable, or choose another name")
    return path


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    inner, outer = inner.resolve(), outer.resolve()
    return inner != outer and outer in inner.parents


def check_apart(outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None],
                folders: Iterable[str | os.PathLike] = ()) -> None:
    """Refuse an output that is an input, and an output folder (one of ``folders``, replaced as a whole) that holds
    an input or lies inside an input model folder (one holding ``manifest.json``). A file written into a model
    folder is allowed (an evaluation report beside the model): ``check_target`` keeps it off the model's files."""
    inputs = [Path(i) for i in inputs if i is not None]
    folders = {Path(f).resolve() for f in folders}
    for output in map(Path, outputs):
        for source in inputs:
            if _same(output, source):
                raise file_error(output, f"is also an input of this job ({source}); choose another output so the "
                                         "input is not overwritten")
            if output.resolve() not in folders:
                continue
            if _inside(source, output):
                raise file_error(output, f"the output folder holds the input {source}; choose another folder")
            if (source / "manifest.json").is_file() and _inside(output, source):
                raise file_error(output, f"lies inside the model folder {source}; write outputs outside model "
                                         "folders")


def check_outside(outputs: Iterable[str | os.PathLike], folders: Iterable[str | os.PathLike]) -> None:
    """Refuse an output inside one of ``folders``, inputs read as a whole (a DICOM series folder): written there,
    it would change that input and be read as part of it the next time."""
    folders = [Path(f) for f in folders]
    for output in map(Path, outputs):
        for folder in folders:
            if _inside(output, folder):
                raise file_error(output, f"lies inside the input folder {folder}, which is read as a whole (a DICOM "
                                         "series); write outputs outside it")


def check_bundle_output(out: str | os.PathLike, method: str, inputs: list, training: bool = True) -> None:
    """Before any work: ``out`` may receive a bundle of ``method`` (and, for a ``training``, its checkpoint
    ``<out>.checkpoint``), neither is one of ``inputs`` or holds one, and no name is too long; else ``UserError``."""
    out = Path(out)
    if is_checkpoint_name(out.name):
        raise file_error(out, f"a model's name may not end in '{CHECKPOINT_SUFFIX}' (that is where trainings keep "
                              "their checkpoints); choose another name")
    outputs = [out, checkpoint_path(out)] if training else [out]
    check_apart(outputs, inputs, folders=outputs)
    check_target(out, bundle_kind(method), extra_name=len(CHECKPOINT_SUFFIX) if training else 0)
    if training:
        check_target(checkpoint_path(out), CHECKPOINT)
