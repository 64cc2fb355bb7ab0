"""The ``distillseg lap`` commands the IncrementalLap module runs (``lap`` is the method's name on the command line
and in model manifests).

Every command is built with ``DistillSegKernelLib.engine.engineCommand`` and run by the kernel's job runner
(``jobRunner.EngineJob``, or ``jobChain.JobChain`` for learning: ``lap learn`` or ``lap train``, then ``lap evaluate``
of the previous and the new version on the frames marked for checking); ``lap segment`` is a request to the kernel's
engine worker (``engineWorker.startRequest``), which keeps the model loaded between segmentations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from DistillSegKernelLib.engine import defaultThreads, engineCommand

from distillseg.contract.manifest import LAP as METHOD
STRATEGIES = ("ours", "finetune", "mib", "plop")
DEFAULT_WORKING_SIZE = (256, 320)  # the engine's default for a first model (height, width; multiples of 32)


@dataclass
class LearningOptions:
    """Engine options of ``lap train`` / ``lap learn``; None leaves the engine's default (``--help`` of the verb)."""

    iterations: int | None = None
    diffusionIterations: int | None = None
    strategy: str = "ours"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    threads: int = 0
    batchSize: int | None = None
    sampleSteps: int | None = None
    replay: int | None = None
    checkpointEvery: int | None = None
    workingSize: tuple[int, int] = DEFAULT_WORKING_SIZE  # first models only: later steps keep the model's size

    def arguments(self) -> list[str]:
        arguments = ["--device", self.device, "--precision", self.precision, "--seed", str(self.seed),
                     "--threads", str(self.threads or defaultThreads())]
        for option, value in (("--iterations", self.iterations), ("--diffusion-iterations", self.diffusionIterations),
                              ("--batch-size", self.batchSize), ("--sample-steps", self.sampleSteps),
                              ("--checkpoint-every", self.checkpointEvery)):
            if value is not None:
                arguments += [option, str(value)]
        return arguments


def trainCommand(dataFolder: Path, structures: list[str], outFolder: Path, options: LearningOptions,
                 python: str | None = None) -> list[str]:
    """``lap train``: a first model (step 0) of ``structures`` from the collected frames."""
    height, width = options.workingSize
    return engineCommand(["lap", "train", "--data", dataFolder, "--source", "structures",
                          "--classes", ",".join(structures), "--out", outFolder, "--size", height, width,
                          *options.arguments(), "--progress", "jsonl"], python)


def learnCommand(modelFolder: Path, dataFolder: Path, structures: list[str], outFolder: Path,
                 options: LearningOptions, python: str | None = None) -> list[str]:
    """``lap learn``: a new version of ``modelFolder`` that also knows ``structures``."""
    if options.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy '{options.strategy}'")
    replay = ["--replay", str(options.replay)] if options.replay is not None else []
    return engineCommand(["lap", "learn", "--model", modelFolder, "--data", dataFolder, "--source", "structures",
                          "--new-classes", ",".join(structures), "--out", outFolder, "--strategy", options.strategy,
                          *replay, *options.arguments(), "--progress", "jsonl"], python)


def evaluateCommand(modelFolder: Path, dataFolder: Path, structures: list[str], reportPath: Path,
                    device: str = "auto", threads: int = 0, python: str | None = None) -> list[str]:
    """``lap evaluate``: IoU and Dice per structure of ``structures`` on the collected check frames."""
    return engineCommand(["lap", "evaluate", "--model", modelFolder, "--data", dataFolder, "--source", "structures",
                          "--classes", ",".join(structures), "--report", reportPath, "--device", device,
                          "--threads", str(threads or defaultThreads()), "--progress", "jsonl"], python)


def segmentArguments(modelFolder: Path, inputPath: Path, outputPath: Path, device: str = "auto") -> list[str]:
    """``lap segment``: an index PNG per frame (value = the model's class value), as the engine worker runs it
    (``engineWorker.startRequest``)."""
    return [str(a) for a in ["lap", "segment", "--model", modelFolder, "--input", inputPath, "--output", outputPath,
                             "--device", device, "--threads", defaultThreads(), "--progress", "jsonl"]]


def restoreCommand(modelFolder: Path, step: int, outFolder: Path, python: str | None = None) -> list[str]:
    """``lap restore``: the version after ``step`` written as a model of its own."""
    return engineCommand(["lap", "restore", "--model", modelFolder, "--step", str(step), "--out", outFolder,
                          "--progress", "jsonl"], python)


def demoDataCommand(outFolder: Path, patients: int, framesPerPatient: int, size: tuple[int, int], seed: int = 0,
                    python: str | None = None) -> list[str]:
    """``lap demo-data``: SYNTHETIC laparoscopic-looking frames in the DSAD layout (for self-tests and demos)."""
    return engineCommand(["lap", "demo-data", "--out", outFolder, "--patients", patients, "--frames-per-patient",
                          framesPerPatient, "--size", size[0], size[1], "--seed", seed, "--progress", "jsonl"],
                         python)
