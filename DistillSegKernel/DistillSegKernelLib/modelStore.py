"""The user's trained models: one folder per model bundle under ``~/.oneshotseg/models`` (outside the extension,
so models survive extension updates), listed, imported from and exported to zip files, deleted.

A bundle is what ``distillseg.contract.manifest`` describes (``manifest.json`` and its ``*.safetensors`` files); the
store reads and verifies it with that contract's code, as plain JSON and ``hashlib``: it never imports torch. One
store serves one method (``"oneshot"`` or ``"lap"``), so each module lists only its own models from the same folder.
Where models, checkpoints and job folders live is ``distillseg.contract.paths``.

Zip imports are untrusted: members with absolute paths, ``..`` components, drive letters, links or special files
are refused before anything is written, and the bundle appears in the store only once it is complete (extracted
into a hidden temporary folder, checked, then renamed). Problems are ``UserError`` sentences naming the file.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from distillseg.contract import paths
from distillseg.contract.atomic import OutputLock, remove_stale_temporaries
from distillseg.contract.errors import UserError
from distillseg.contract.labels import LabelTable
from distillseg.contract.manifest import MANIFEST, read_manifest, verify_weights
from distillseg.contract.model_summary import summary_lines

MAX_UNCOMPRESSED_BYTES = 20 * 2**30  # refuse zip bombs: no real bundle comes near 20 GiB
_SAFE_NAME = re.compile(r"[^\w. -]+")  # letters of any script, digits, "_", ".", " ", "-"


@dataclass
class ModelInfo:
    """One model of the store: its name (the folder name), folder and manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]

    @property
    def method(self) -> str:
        return str(self.manifest.get("method", ""))

    @property
    def labels(self) -> LabelTable:
        """The structures the model segments (value, name, colour 0-255, terminology), background excluded."""
        return LabelTable.from_json(self.manifest.get("labels", []))

    def summary(self) -> str:
        """A few lines for the model list, the same ``distillseg model info`` prints (``model_summary``)."""
        return "\n".join(summary_lines(self.manifest, self.path))


def _isLinkOrSpecial(member: zipfile.ZipInfo) -> bool:
    # Unix file type bits in the high word; zips written on Windows (or by writestr) carry none.
    fileType = stat.S_IFMT(member.external_attr >> 16)
    return fileType not in (0, stat.S_IFREG, stat.S_IFDIR)


def _safeMemberPath(member: zipfile.ZipInfo, zipPath: Path) -> PurePosixPath:
    """The member's relative path; ``UserError`` for anything that could land outside the target folder."""
    name = member.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if (name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts
            or any(part in ("", ".") for part in name.rstrip("/").split("/")) or "\x00" in name):
        raise UserError(f"{zipPath}: refused, member '{member.filename}' would be written outside the model folder.")
    if _isLinkOrSpecial(member):
        raise UserError(f"{zipPath}: refused, member '{member.filename}' is a link or special file.")
    return path


class ModelStore:
    """The models of one method (``"oneshot"`` or ``"lap"``) in one folder (default: ``<home>/models``, see
    ``distillseg.contract.paths``)."""

    def __init__(self, method: str, folder: str | os.PathLike | None = None):
        self.method = method
        self.folder = Path(folder) if folder is not None else paths.models_folder()

    def ensureFolder(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return self.folder

    # --------------------------------------------------------------------------------------------- listing
    def models(self) -> list[ModelInfo]:
        """Complete bundles of this store's method, sorted by name; unreadable folders are skipped."""
        if not self.folder.is_dir():
            return []
        found = []
        for child in sorted(self.folder.iterdir(), key=lambda p: p.name.lower()):
            if child.name.startswith(".") or paths.is_checkpoint_name(child.name) or not child.is_dir():
                continue
            try:
                found.append(ModelInfo(child.name, child, read_manifest(child, self.method)))
            except UserError:
                continue  # another method's model, or not a readable bundle
        return found

    def model(self, name: str) -> ModelInfo:
        path = self.modelPath(name)
        return ModelInfo(path.name, path, read_manifest(path, self.method))

    def unfinishedTrainings(self) -> list[str]:
        """Names whose training left a checkpoint (``<name>.checkpoint/``) that ``--resume`` can continue."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name[: -len(paths.CHECKPOINT_SUFFIX)] for p in self.folder.iterdir()
                      if p.is_dir() and paths.is_checkpoint_name(p.name) and not p.name.startswith("."))

    # --------------------------------------------------------------------------------------------- names and paths
    @staticmethod
    def cleanName(name: str) -> str:
        """A folder-safe model name: letters (any script), digits, ``. _ -`` and spaces; never empty, hidden or a
        checkpoint folder's name."""
        cleaned = _SAFE_NAME.sub("_", name).strip(" .")
        if paths.is_checkpoint_name(cleaned):
            cleaned = cleaned[: -len(paths.CHECKPOINT_SUFFIX)].rstrip(" .")
        return cleaned or "model"

    def modelPath(self, name: str) -> Path:
        """The folder of model ``name``; refuses names that are not plain folder names."""
        if name != self.cleanName(name):
            raise UserError(f"'{name}' is not a valid model name (use letters, digits, spaces, '.', '_', '-').")
        return self.folder / name

    def checkpointPath(self, name: str) -> Path:
        """Where the engine keeps the checkpoint of an unfinished training of ``name``."""
        return paths.checkpoint_path(self.modelPath(name))

    def jobsFolder(self) -> Path:
        """Where this method's unfinished jobs keep their inputs (``<home>/jobs/<method>``)."""
        return paths.jobs_folder(self.folder, self.method)

    def uniqueName(self, base: str) -> str:
        """``base`` cleaned, with `` 2``, `` 3``… appended if a model or checkpoint of that name exists."""
        base = self.cleanName(base)
        name, number = base, 1
        while (self.folder / name).exists() or paths.checkpoint_path(self.folder / name).exists():
            number += 1
            name = f"{base} {number}"
        return name

    # --------------------------------------------------------------------------------------------- import / export
    def importZip(self, zipPath: str | os.PathLike, name: str | None = None) -> ModelInfo:
        """Unpack a zipped bundle into the store (new name if taken); returns the imported model.

        The manifest may sit at the zip's root or inside one top folder. Nothing is left behind on failure.
        """
        zipPath = Path(zipPath)
        try:
            archive = zipfile.ZipFile(zipPath)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UserError(f"{zipPath}: not a readable zip file ({exc.__class__.__name__}).") from None
        with archive:
            members = [(member, _safeMemberPath(member, zipPath)) for member in archive.infolist()]
            if sum(member.file_size for member, _ in members) > MAX_UNCOMPRESSED_BYTES:
                raise UserError(f"{zipPath}: refused, it would unpack to more than 20 GiB.")
            manifests = [path for _, path in members if path.name == MANIFEST]
            if len(manifests) != 1 or len(manifests[0].parts) > 2:
                raise UserError(f"{zipPath}: not a model bundle (expected one {MANIFEST} at the top).")
            prefix = manifests[0].parent
            self.ensureFolder()
            staging = Path(tempfile.mkdtemp(prefix=".import-", dir=self.folder))
            try:
                for member, path in members:
                    if member.is_dir():
                        continue
                    relative = path.relative_to(prefix) if prefix.parts else path
                    if prefix.parts and path.parts[: len(prefix.parts)] != prefix.parts:
                        raise UserError(f"{zipPath}: member '{member.filename}' lies outside the bundle folder.")
                    target = staging.joinpath(*relative.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        with archive.open(member) as source, open(target, "wb") as destination:
                            shutil.copyfileobj(source, destination)
                    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                        raise UserError(f"{zipPath}: member '{member.filename}' is damaged "
                                              f"({exc.__class__.__name__}); export the model again.") from None
                manifest = read_manifest(staging, self.method, shown=zipPath)
                verify_weights(staging, manifest, shown=zipPath)
                finalName = self.uniqueName(name or (prefix.name if prefix.parts else zipPath.stem))
                os.replace(staging, self.folder / finalName)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        return self.model(finalName)

    def exportZip(self, name: str, zipPath: str | os.PathLike) -> Path:
        """Write model ``name`` as a zip with one top folder ``<name>/``; written to a temporary file first."""
        model = self.model(name)
        zipPath = Path(zipPath)
        zipPath.parent.mkdir(parents=True, exist_ok=True)
        temporary = zipPath.with_name(f".{zipPath.name}.tmp-{os.getpid()}")
        try:
            with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for path in sorted(model.path.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        archive.write(path, str(PurePosixPath(model.name, *path.relative_to(model.path).parts)))
            os.replace(temporary, zipPath)
        finally:
            temporary.unlink(missing_ok=True)
        return zipPath

    def removeLeftovers(self, name: str) -> None:
        """Remove what an engine job writing ``name`` left half-written when it was killed: the hidden staging
        folders of the bundle and of a checkpoint being saved (``.<name>.tmp-*``, ``.<name>.checkpoint.tmp-*``).

        A killed process cannot clean up after itself, and the engine only sweeps them when it next writes the same
        name, so a failed job's caller does it here. Nothing is touched while a job still holds the engine's lock on
        ``name`` (e.g. another Slicer training it). A complete checkpoint stays, for Resume.
        """
        path = self.modelPath(name)
        if not self.folder.is_dir():
            return
        try:
            with OutputLock(path):
                remove_stale_temporaries(path)
                remove_stale_temporaries(self.checkpointPath(name))
        except UserError:  # another job is writing this model: its staging folders are not leftovers
            return

    def delete(self, name: str, includeCheckpoint: bool = True) -> None:
        """Remove model ``name`` (and its unfinished-training checkpoint); only folders inside the store."""
        paths = [self.modelPath(name)] + ([self.checkpointPath(name)] if includeCheckpoint else [])
        for path in paths:
            if path.resolve().parent != self.folder.resolve():
                raise UserError(f"{path}: refused to delete a folder outside the model store.")
            if path.is_dir():
                shutil.rmtree(path)
