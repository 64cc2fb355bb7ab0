"""A stand-in for the ``distillseg`` engine: the same command lines, ``--progress jsonl`` events, exit codes and
output files, without PyTorch and without learning anything. The module self-tests run the module logic against it
on a factory Slicer (no PyTorch installed), and the tests use it to check job start, progress, cancel and result
import, which do not depend on what a network predicts.

Run as a script: ``<python> standInEngine.py <method> <verb> …`` (``engine.standInEngine()`` makes every engine
command do so). It imports numpy, Pillow and the engine's torch-free contract package only. What it does:

- ``oneshot train``, ``lap train``, ``lap learn``: count through the stages of the real verb and write a model
  bundle of the requested structures whose manifest says ``"stand_in": true`` (its one weight file holds no tensor);
- ``oneshot segment``: a label map on the input's exact grid (NRRD: the input's header, 8-bit raw voxels), the
  model's values given to intensity bands of the upper half of the scan;
- ``lap segment``: an index PNG per frame, the model's values given to column bands of the brighter pixels;
- ``lap evaluate``: the IoU and Dice of those bands against the collected masks;
- ``worker``: the engine worker's protocol (``distillseg.contract.worker``): each request line runs one of the
  verbs above and ends with its ``done`` line, until stdin closes;
- anything else: the engine's error event and exit code 2.

Every step lasts ``$DISTILLSEG_STAND_IN_STEP_SECONDS`` (default 0.01 s), so a job with many iterations runs long
enough to be cancelled. SIGTERM ends it with the engine's cancel code (130); outputs appear only when complete. A
model replaces only a bundle of its method, as the engine's; the stand-in's other files replace any file (the
Slicer side writes them into fresh job folders).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

from distillseg.contract import events
from distillseg.contract.atomic import atomic_directory, atomic_file
from distillseg.contract.errors import EXIT_CANCELLED, EXIT_USER_ERROR, UserError
from distillseg.contract.frames import FRAME_SUFFIXES, read_frame, read_mask, write_index_png
from distillseg.contract.labels import LabelEntry, LabelTable, default_color, read_label_table
from distillseg.contract.manifest import FORMAT_VERSION, LAP, MANIFEST, ONESHOT, read_manifest, sha256_of
from distillseg.contract.outputs import ANY_FILE, bundle_kind
from distillseg.contract.paths import segmentation_file_name
from distillseg.contract.worker import RequestError, done_line, parse_request, request_id_of

STEP_SECONDS_VARIABLE = "DISTILLSEG_STAND_IN_STEP_SECONDS"
DESCRIPTION = "stand-in engine (no PyTorch, nothing is learned)"
WEIGHTS_FILE = "stand_in.safetensors"
_NRRD_TYPES = {"short": "i2", "int16": "i2", "signed short": "i2", "ushort": "u2", "unsigned short": "u2",
               "uint16": "u2", "int": "i4", "signed int": "i4", "int32": "i4", "uint": "u4", "unsigned int": "u4",
               "float": "f4", "double": "f8", "uchar": "u1", "unsigned char": "u1", "uint8": "u1",
               "signed char": "i1", "char": "i1", "int8": "i1"}


class Cancelled(Exception):
    """SIGTERM arrived: the job is being cancelled."""


def emit(kind: str, **fields) -> None:
    print(events.event_line(kind, **fields), flush=True)


def progress(stage: str, step: int, total: int, started: float) -> None:
    """One ``progress`` event, as the engine reports a step (times in seconds since ``started``)."""
    elapsed = time.monotonic() - started
    emit(events.PROGRESS, **{events.STAGE: stage, events.STEP: step, events.TOTAL: total, events.LOSS: 1.0 / step,
                             events.ETA_S: elapsed / step * (total - step), events.ELAPSED_S: elapsed})


def pause() -> None:
    """One step's time: ``$DISTILLSEG_STAND_IN_STEP_SECONDS``."""
    time.sleep(float(os.environ.get(STEP_SECONDS_VARIABLE, "0.01")))


def steps(stage: str, total: int) -> None:
    """Count through a stage of ``total`` steps of ``$DISTILLSEG_STAND_IN_STEP_SECONDS`` each."""
    started = time.monotonic()
    for step in range(1, total + 1):
        pause()
        progress(stage, step, total, started)


def writeBundle(out: Path, method: str, labels: LabelTable, extra: dict) -> None:
    """A complete model bundle in ``out`` (written aside and renamed, as the engine writes it)."""
    with atomic_directory(out, bundle_kind(method)) as folder:
        header = json.dumps({"__metadata__": {"stand_in": "true"}}).encode()
        (folder / WEIGHTS_FILE).write_bytes(len(header).to_bytes(8, "little") + header)
        manifest = {"format_version": FORMAT_VERSION, "method": method, "labels": labels.to_json(),
                    "stand_in": True, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "weights": {"stand_in": {"file": WEIGHTS_FILE, "sha256": sha256_of(folder / WEIGHTS_FILE)}},
                    **extra}
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    emit(events.RESULT, model=str(out), classes=labels.to_json())


# ------------------------------------------------------------------------------------------------ 3D scans
def readNrrd(path: Path) -> tuple[list[str], np.ndarray]:
    """Header lines (fields other than type, encoding and endian) and the voxels in file order of a NRRD."""
    raw = path.read_bytes()
    end = raw.find(b"\n\n")
    lines = raw[:end].decode("latin-1").splitlines()
    fields = {line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip() for line in lines[1:]
              if ":" in line and not line.startswith("#")}
    data = raw[end + 2:]
    if fields.get("encoding") in ("gzip", "gz"):
        data = gzip.decompress(data)
    elif fields.get("encoding") != "raw":
        raise UserError(f"{path}: the stand-in engine reads raw or gzip NRRD only.")
    order = ">" if fields.get("endian") == "big" else "<"
    voxels = np.frombuffer(data, dtype=order + _NRRD_TYPES[fields["type"]])
    kept = [line for line in lines if line.split(":", 1)[0].strip() not in ("type", "encoding", "endian")]
    return kept, voxels


def writeLabelNrrd(path: Path, header: list[str], labels: np.ndarray) -> None:
    with atomic_file(path, ANY_FILE) as tmp:
        text = "\n".join(header[:1] + ["type: unsigned char", "encoding: raw", "endian: little"] + header[1:])
        tmp.write_bytes(text.encode("latin-1") + b"\n\n" + labels.astype("u1").tobytes())


def intensityBands(voxels: np.ndarray, values: list[int]) -> np.ndarray:
    """The model's values given, lowest first, to equal-count intensity bands of the upper half of the scan."""
    edges = np.quantile(voxels, np.linspace(0.5, 1.0, len(values) + 1))
    band = np.clip(np.searchsorted(edges, voxels, side="right") - 1, 0, len(values) - 1)
    return np.where(voxels > edges[0], np.asarray(values)[band], 0)


def oneshotTrain(args) -> None:
    steps("augmenter", args.augmenter_iterations)
    steps("distill", args.iterations)
    writeBundle(Path(args.out), ONESHOT, read_label_table(args.label_names), {"training": {"stand_in": "yes"}})


def oneshotSegment(args) -> None:
    """Each ``--input`` scan into ``--output`` (a file for one scan, else a folder), named as the engine names them."""
    labels = LabelTable.from_json(read_manifest(args.model, ONESHOT)["labels"])
    output = Path(args.output)
    single = len(args.input) == 1 and output.name.lower().endswith((".nrrd", ".nii", ".nii.gz"))
    outputs = [output] if single else [output / segmentation_file_name(Path(path).name, args.format or ".seg.nrrd")
                                       for path in args.input]
    written, started = [], time.monotonic()
    for number, (path, out) in enumerate(zip(args.input, outputs), 1):
        header, voxels = readNrrd(Path(path))
        writeLabelNrrd(out, header, intensityBands(voxels.astype(np.float64), labels.values))
        written.append(str(out))
        pause()
        progress("segment", number, len(outputs), started)
    emit(events.RESULT, outputs=written)


# ------------------------------------------------------------------------------------------------ frames
def columnBands(frame: np.ndarray, values: list[int]) -> np.ndarray:
    """The model's values given to equal column bands of the pixels brighter than the frame's mean."""
    grey = frame.astype(np.float64).mean(axis=2)
    band = np.arange(grey.shape[1]) * len(values) // grey.shape[1]
    perColumn = np.broadcast_to(np.asarray(values, np.uint16)[band], grey.shape)
    return np.where(grey > grey.mean(), perColumn, 0).astype(np.uint16)


def lapModel(path) -> tuple[dict, LabelTable]:
    manifest = read_manifest(path, LAP)
    return manifest, LabelTable.from_json(manifest["labels"])


def lapTrain(args) -> None:
    names = [name.strip() for name in args.classes.split(",") if name.strip()]
    labels = LabelTable([LabelEntry(value, name, default_color(value)) for value, name in enumerate(names, 1)])
    steps("diffusion", args.diffusion_iterations)
    steps("segmenter", args.iterations)
    history = [{"step": 0, "classes_added": names}]
    writeBundle(Path(args.out), LAP, labels, {"step": 0, "history": history, "versions": [{"step": 0}]})


def lapLearn(args) -> None:
    manifest, labels = lapModel(args.model)
    names = [name.strip() for name in args.new_classes.split(",") if name.strip()]
    first = max(labels.values, default=0) + 1
    added = [LabelEntry(value, name, default_color(value)) for value, name in enumerate(names, first)]
    step = int(manifest.get("step", 0)) + 1
    steps("segmenter", args.iterations)
    writeBundle(Path(args.out), LAP, LabelTable(labels.entries + added),
                {"step": step, "history": manifest.get("history", []) + [{"step": step, "classes_added": names}],
                 "versions": manifest.get("versions", []) + [{"step": step}]})


def lapSegment(args) -> None:
    _, labels = lapModel(args.model)
    source, target = Path(args.input[0]), Path(args.output)
    frames = [source] if source.is_file() else sorted(
        p for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))
    written, started = [], time.monotonic()
    for number, path in enumerate(frames, 1):
        out = target / f"{path.stem}.png"
        written.append(str(write_index_png(out, columnBands(read_frame(path), labels.values))))
        progress("segment", number, len(frames), started)
    emit(events.RESULT, outputs=written, classes=labels.to_json())


def lapEvaluate(args) -> None:
    _, labels = lapModel(args.model)
    names = [name.strip() for name in args.classes.split(",") if name.strip()]
    byName = {entry.name: entry.value for entry in labels.entries}
    perClass, patients = {}, set()
    for name in names:
        intersection = union = total = 0
        for mask in sorted((Path(args.data) / name).glob("*/mask*.png")):
            truth = read_mask(mask) > 0
            predicted = columnBands(read_frame(mask.with_name("image" + mask.name[4:])), labels.values) == byName[name]
            intersection += int((truth & predicted).sum())
            union += int((truth | predicted).sum())
            total += int(truth.sum() + predicted.sum())
            patients.add(mask.parent.name)
        perClass[name] = {"iou": intersection / union if union else None,
                          "dice": 2 * intersection / total if total else None}
    steps("evaluate", 1)
    with atomic_file(args.report, ANY_FILE) as tmp:
        tmp.write_text(json.dumps({"per_class": perClass, "patients": sorted(patients), "stand_in": True}),
                       encoding="utf-8")
    emit(events.RESULT, report=str(args.report))


VERBS = {("oneshot", "train"): oneshotTrain, ("oneshot", "segment"): oneshotSegment, ("lap", "train"): lapTrain,
         ("lap", "learn"): lapLearn, ("lap", "segment"): lapSegment, ("lap", "evaluate"): lapEvaluate}


def parse(argv: list[str]):
    """The options the stand-in reads; every other option of the real verbs is accepted and ignored."""
    parser = argparse.ArgumentParser(prog="standInEngine")
    parser.add_argument("method")
    parser.add_argument("verb")
    for option in ("--out", "--model", "--output", "--label-names", "--classes", "--new-classes", "--data",
                   "--report", "--format"):
        parser.add_argument(option)
    parser.add_argument("--input", nargs="+")  # several scans for oneshot segment, one folder or frame for lap
    for option, default in (("--iterations", 10), ("--augmenter-iterations", 5), ("--diffusion-iterations", 5)):
        parser.add_argument(option, type=int, default=default)
    return parser.parse_known_args(argv)[0]


def serveRequests() -> int:
    """``worker``: run each request line's command as ``main`` would, then its ``done`` line; 0 when stdin closes
    (a cancelled request ends the whole worker, as the real one does)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            requestId, arguments = parse_request(line)
        except RequestError as error:
            emit(events.ERROR, **{events.MESSAGE: str(error)})
            print(done_line(request_id_of(line), EXIT_USER_ERROR), flush=True)
            continue
        code = main(arguments)
        if code == EXIT_CANCELLED:
            return code
        print(done_line(requestId, code), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    def cancel(signalNumber, frame):
        raise Cancelled()

    signal.signal(signal.SIGTERM, cancel)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        try:
            return serveRequests()
        except Cancelled:  # between requests
            return EXIT_CANCELLED
    args = parse(argv)
    emit(events.DEVICE, **{events.DEVICE: "cpu", events.DESCRIPTION: DESCRIPTION, events.PRECISION: "fp32"})
    try:
        verb = VERBS.get((args.method, args.verb))
        if verb is None:
            raise UserError(f"The stand-in engine does not run '{args.method} {args.verb}'.")
        verb(args)
    except Cancelled:
        return EXIT_CANCELLED
    except UserError as error:
        emit(events.ERROR, **{events.MESSAGE: str(error)})
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
