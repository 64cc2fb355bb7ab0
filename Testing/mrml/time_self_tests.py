"""Times what each module's self-test runs, on slicer-core: its two stories with the self-test's options (the module
logic against the stand-in engine; the real-engine story), each on a cleared scene in a fresh folder, as
``EngineModuleTest`` runs them in Slicer. Not collected by pytest: timings on a shared CPU are reported, not
asserted. From the repository root::

    PYTHONPATH=. python Testing/mrml/time_self_tests.py

One line per module and part: wall-clock seconds, CPU seconds of this process and its engine processes (what the
part costs on an idle machine: the engine runs on one thread next to Slicer), and the story's problems or
overlap.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), *(str(HERE.parents[1] / name) for name in ("DistillSegKernel", "OneShotSeg",
                                                                        "IncrementalLap"))]

from headless_slicer import headlessApplication  # noqa: E402
from DistillSegKernelLib import engine  # noqa: E402
from DistillSegKernelLib.modelStore import ModelStore  # noqa: E402
from IncrementalLapLib import sampleFrames  # noqa: E402
from IncrementalLapLib.lapJobControl import LapJobControl  # noqa: E402
from IncrementalLapLib.lapJobs import LearningOptions  # noqa: E402
from OneShotSegLib import sampleCase  # noqa: E402
from OneShotSegLib.jobControl import OneShotJobControl  # noqa: E402


def cpuSeconds() -> float:
    return sum(usage.ru_utime + usage.ru_stime for usage in (resource.getrusage(resource.RUSAGE_SELF),
                                                            resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed(title: str, run) -> None:
    app.scene.Clear(0)
    folder = tempfile.mkdtemp(prefix="self-test-")
    started, cpuStarted = time.monotonic(), cpuSeconds()
    outcome = run(folder)
    print(f"{title}: {time.monotonic() - started:.1f} s wall, {cpuSeconds() - cpuStarted:.1f} s CPU  {outcome}",
          flush=True)


app = headlessApplication(withSequences=True)
sequencesLogic = app.logics["Sequences"]
with engine.standInEngine():
    timed("OneShotSeg, stand-in engine", lambda folder: sampleCase.standInStory(
        app.scene, OneShotJobControl(Path(folder) / "models"), SimpleNamespace(), folder))
    timed("IncrementalLap, stand-in engine", lambda folder: sampleFrames.standInStory(
        app.scene, LapJobControl(Path(folder) / "models"), SimpleNamespace(), folder, sequencesLogic))
timed("OneShotSeg, real engine", lambda folder: sampleCase.trainAndSegment(
    app.scene, ModelStore("oneshot", Path(folder) / "models"), folder, sampleCase.selfTestStory())[1])
timed("IncrementalLap, real engine", lambda folder: sampleFrames.storyProblems(sampleFrames.runStory(
    app.scene, ModelStore("lap", Path(folder) / "models"), folder, LearningOptions(**sampleFrames.SELF_TEST_OPTIONS),
    scored=False)))
