"""The OneShotSeg training job: train a model from an atlas and unlabelled scans (segmenting with a model is
``scanSegmentation``).

Each job is: write the nodes to files the engine reads, build the ``distillseg oneshot …`` command, run it with the
job runner, and bring the result back. Training inputs are kept in ``~/.oneshotseg/jobs/oneshot/<model name>/``
until the training succeeds, so a cancelled training can be resumed later (even after restarting Slicer) from the engine's
checkpoint ``<model folder>.checkpoint/``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from DistillSegKernelLib import segmentLabels, volumeFiles
from DistillSegKernelLib.engine import defaultThreads, engineCommand, engineEnvironment
from DistillSegKernelLib.jobRunner import EngineJob, removedIfStartFails
from DistillSegKernelLib.modelStore import ModelInfo, ModelStore

from distillseg.contract.manifest import ONESHOT as METHOD
ENGINE_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr")
INPUTS_FILE = "inputs.json"
OPTIONS_FILE = "options.json"


class OneShotJobError(Exception):
    """A job that cannot start as asked, as one sentence for the user."""


@dataclass
class TrainingOptions:
    """Engine options of a training; None or 0 leaves the engine's default (``spacingMm`` 0: automatic, the
    atlas's spacing coarsened to fit the device). ``prealign`` False skips the affine pre-alignment of scans that
    are already aligned to the atlas."""

    iterations: int | None = None
    augmenterIterations: int | None = None
    spacingMm: float = 0.0
    device: str = "auto"
    precision: str = "auto"
    prealign: bool = True
    seed: int = 0
    threads: int = 0
    checkpointEvery: int | None = None

    def arguments(self) -> list[str]:
        arguments = ["--device", self.device, "--precision", self.precision, "--seed", str(self.seed),
                     "--threads", str(self.threads or defaultThreads())]
        if self.iterations:
            arguments += ["--iterations", str(self.iterations)]
        if self.augmenterIterations:
            arguments += ["--augmenter-iterations", str(self.augmenterIterations)]
        if self.spacingMm and self.spacingMm > 0:
            arguments += ["--spacing", f"{self.spacingMm:g}"]
        if not self.prealign:
            arguments.append("--no-prealign")
        if self.checkpointEvery:
            arguments += ["--checkpoint-every", str(self.checkpointEvery)]
        return arguments


@dataclass
class TrainingInputs:
    """The files of one training job, kept in its folder (and listed in ``inputs.json``) for resuming."""

    folder: Path
    atlasImage: Path
    atlasLabels: Path
    labelNames: Path
    unlabeled: list[Path] = field(default_factory=list)

    def save(self) -> None:
        data = {key: (str(value) if isinstance(value, Path) else [str(v) for v in value])
                for key, value in asdict(self).items()}
        (self.folder / INPUTS_FILE).write_text(json.dumps(data, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "TrainingInputs":
        try:
            data = json.loads((Path(folder) / INPUTS_FILE).read_text(encoding="utf-8"))
            inputs = cls(Path(data["folder"]), Path(data["atlasImage"]), Path(data["atlasLabels"]),
                         Path(data["labelNames"]), [Path(p) for p in data["unlabeled"]])
        except (OSError, KeyError, TypeError, ValueError):
            raise OneShotJobError(f"{folder}: the inputs of this unfinished training are gone; train it anew.") from None
        missing = [p for p in [inputs.atlasImage, inputs.atlasLabels, *inputs.unlabeled] if not p.is_file()]
        if missing:
            raise OneShotJobError(f"{missing[0]}: an input of this unfinished training is gone; train it anew.")
        return inputs


def engineImagesIn(folder: str | Path) -> list[Path]:
    """The NIfTI/NRRD scans of a folder (segmentation files ``*.seg.nrrd`` excluded), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OneShotJobError(f"{folder}: the folder of unlabelled scans does not exist.")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(ENGINE_IMAGE_SUFFIXES)
                  and not p.name.lower().endswith(".seg.nrrd"))


def prepareTraining(store: ModelStore, modelName: str, atlasVolume, atlasSegmentation,
                    unlabeledVolumes=(), unlabeledFiles=()) -> TrainingInputs:
    """Write the atlas scan, its label map + label table and the unlabelled scans into the job's folder.

    ``unlabeledVolumes``: volume nodes; ``unlabeledFiles``: NIfTI/NRRD files, kept in the job folder under neutral
    names (``keepInJobFolder``), so the job folder, like the model, names none of the user's files.
    """
    volumeFiles.checkScalarVolume(atlasVolume, "atlas")
    if atlasSegmentation is None:
        raise OneShotJobError("Select the atlas segmentation (the labelled structures of the atlas scan).")
    volumes = [v for v in unlabeledVolumes if v is not None and v.GetID() != atlasVolume.GetID()]
    files = [Path(f) for f in unlabeledFiles]
    if not volumes and not files:
        raise OneShotJobError("Select at least one unlabelled scan (a loaded volume or a folder of scans).")
    for volume in volumes:
        volumeFiles.checkScalarVolume(volume, "unlabelled scan")
    folder = store.jobsFolder() / store.modelPath(modelName).name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    inputs = TrainingInputs(folder, folder / "atlas.nrrd", folder / "atlas_labels.nrrd", folder / "label_names.json")
    with removedIfStartFails(folder):  # no half-written job a later Resume could pick up
        volumeFiles.writeVolumeFile(atlasVolume, inputs.atlasImage)
        segmentLabels.writeLabelFiles(atlasSegmentation, atlasVolume, inputs.atlasLabels, inputs.labelNames)
        for index, volume in enumerate(volumes):
            inputs.unlabeled.append(volumeFiles.writeVolumeFile(volume, folder / f"unlabeled_{index:03d}.nrrd"))
        for index, path in enumerate(files, start=len(volumes)):
            inputs.unlabeled.append(keepInJobFolder(path, folder / f"unlabeled_{index:03d}", atlasVolume.GetScene()))
        inputs.save()
    return inputs


def keepInJobFolder(path: Path, stem: Path, scene) -> Path:
    """``path`` kept as ``<stem><suffix>``: a hard link where the file system allows (no extra disk), else a copy.
    A detached NRRD header (``.nhdr``) names its data file, so it is read and written as one ``.nrrd`` instead, and
    a gzip header that stores the original file name is copied without it (``_copyWithoutGzipNames``).
    File and folder names in hospitals often hold patient names or IDs: a job that survives in the user's jobs
    folder (for Resume) keeps none of them."""
    name = path.name.lower()
    if name.endswith(".nhdr"):
        node = volumeFiles.readVolumeFile(path, scene)
        try:
            return volumeFiles.writeVolumeFile(node, stem.with_name(stem.name + ".nrrd"))
        finally:
            scene.RemoveNode(node)
    suffix = next(s for s in (".nii.gz", ".nii", ".nrrd") if name.endswith(s))
    kept = stem.with_name(stem.name + suffix)
    if _copyWithoutGzipNames(path, kept):
        return kept
    try:
        os.link(path, kept)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(path, kept)
    return kept


_GZIP_FHCRC, _GZIP_FEXTRA, _GZIP_FNAME, _GZIP_FCOMMENT = 0x02, 0x04, 0x08, 0x10


def _copyWithoutGzipNames(path: Path, kept: Path) -> bool:
    """A gzip file whose header holds a file name or a comment (gzip, pigz and most writers store the original
    name, RFC 1952 FNAME) is copied with those header fields left out; the compressed data and its checksum do not
    depend on them, so the voxels are unchanged. False (nothing written) for any other file."""
    with open(path, "rb") as source:
        head = source.read(10)
        if len(head) < 10 or head[:2] != b"\x1f\x8b" or not head[3] & (_GZIP_FNAME | _GZIP_FCOMMENT):
            return False
        flags = head[3]
        extra = b""
        if flags & _GZIP_FEXTRA:
            size = source.read(2)
            extra = size + source.read(int.from_bytes(size, "little"))
        for field in (_GZIP_FNAME, _GZIP_FCOMMENT):
            if flags & field:
                while source.read(1) not in (b"\x00", b""):
                    pass
        if flags & _GZIP_FHCRC:  # the header's own checksum covered the fields left out: dropped with them
            source.read(2)
        keptFlags = flags & ~(_GZIP_FNAME | _GZIP_FCOMMENT | _GZIP_FHCRC)
        with open(kept, "wb") as target:
            target.write(head[:3] + bytes([keptFlags]) + head[4:10] + extra)
            shutil.copyfileobj(source, target)
    return True


def trainCommand(inputs: TrainingInputs, modelFolder: Path, options: TrainingOptions, resume: bool = False,
                 python: str | None = None) -> list[str]:
    arguments = ["oneshot", "train", "--atlas", inputs.atlasImage, "--atlas-labels", inputs.atlasLabels,
                 "--label-names", inputs.labelNames, "--unlabeled", *inputs.unlabeled, "--out", modelFolder,
                 *options.arguments(), "--progress", "jsonl"]
    if resume:
        arguments.append("--resume")
    return engineCommand(arguments, python)


def startTraining(store: ModelStore, modelName: str, inputs: TrainingInputs, options: TrainingOptions | None,
                  resume: bool = False, environment: dict | None = None, onEvent=None) -> EngineJob:
    """Start ``distillseg oneshot train`` into ``<store>/<modelName>``; returns the running job.

    The options are kept with the inputs: a resumed training (``options`` None) continues with the options it was
    started with, since the engine resumes a checkpoint only for the same inputs and options.
    """
    store.ensureFolder()
    optionsFile = inputs.folder / OPTIONS_FILE
    if options is None:
        try:
            options = TrainingOptions(**json.loads(optionsFile.read_text(encoding="utf-8")))
        except (OSError, TypeError, ValueError):
            raise OneShotJobError(f"{optionsFile}: the options of this unfinished training are gone; train it anew.") \
                from None
    else:
        optionsFile.write_text(json.dumps(asdict(options), indent=1), encoding="utf-8")
    command = trainCommand(inputs, store.modelPath(modelName), options, resume)
    return EngineJob(command, engineEnvironment(environment), onEvent=onEvent).start()


def finishTraining(store: ModelStore, modelName: str, inputs: TrainingInputs) -> ModelInfo:
    """After a successful training: the new model, and the job's input files removed."""
    model = store.model(modelName)
    shutil.rmtree(inputs.folder, ignore_errors=True)
    return model
