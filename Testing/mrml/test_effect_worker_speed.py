"""The Segment Editor effects' second segmentation takes less than half the first one's time, from the press of
Apply to the segments in the segmentation node: the first press starts the engine worker (interpreter, torch and
MONAI imports, model loading), the second finds it running with the model loaded.

The effects' Qt part cannot run on slicer-core, so this times the Lib calls their Apply and their timer make, in the
same order (``SegmentEditorEffect`` / ``SegmentEditorLapEffect``: ``startSegmentation``; the job polled until it
ends; ``finishSegmentation`` into the current segmentation), on a real scene with the real engine.
"""

from __future__ import annotations

import time

import pytest

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from DistillSegKernelLib import engineWorker, jobProtocol, segmentLabels, volumeFiles
from DistillSegKernelLib.modelStore import ModelStore
from IncrementalLapLib import frameSegmentation, frameVolumes
from OneShotSegLib import oneshotJobs, scanSegmentation
from tiny_models import lap_fixture, oneshot_fixture

TIMEOUT_S = 240


def _pressApply(start, finish, segmentationNode) -> float:
    """Seconds from Apply to the segments written, as the effect runs it (its timer polls every 250 ms)."""
    started = time.monotonic()
    segmentation = start()
    assert jobProtocol.waitFor(segmentation.job, TIMEOUT_S, interval=0.25) == jobProtocol.SUCCEEDED, \
        segmentation.job.errorMessage
    finish(segmentation, segmentationNode)
    return time.monotonic() - started


@pytest.fixture
def coldWorker():
    """No worker runs yet, as in a Slicer session before the first Apply."""
    engineWorker.stopSharedWorkers()
    yield
    engineWorker.stopSharedWorkers()


def test_one_shot_effect(scene, tmp_path_factory, tmp_path, coldWorker):
    tiny = oneshot_fixture(tmp_path_factory)
    model = ModelStore(oneshotJobs.METHOD, tiny.model.parent).model(tiny.model.name)
    sourceVolume = volumeFiles.readVolumeFile(tiny.case["scans"][0], scene)
    segmentationNode = segmentLabels.newSegmentationFor(sourceVolume)
    seconds = [_pressApply(lambda: scanSegmentation.startSegmentation(model, sourceVolume, tmp_path / f"press {n}",
                                                                      "cpu"),
                           scanSegmentation.finishSegmentation, segmentationNode) for n in (1, 2)]
    print(f"One-shot effect, Apply to segments: first {seconds[0]:.2f} s, second {seconds[1]:.2f} s")
    assert seconds[1] < seconds[0] / 2, seconds
    assert len(segmentLabels.segmentIds(segmentationNode)) == len(model.labels.entries)


def test_laparoscopic_effect(scene, tmp_path_factory, tmp_path, coldWorker):
    lap = lap_fixture(tmp_path_factory)
    model = ModelStore(frameSegmentation.METHOD, lap.model.parent).model(lap.model.name)
    frame = frameVolumes.loadFrame(next((lap.demo / "multilabel" / "01").glob("image*.png")), scene)
    segmentationNode = segmentLabels.newSegmentationFor(frame)
    seconds = [_pressApply(lambda: frameSegmentation.startFrameSegmentation(model, [("0", frame)],
                                                                            tmp_path / f"press {n}", "cpu"),
                           lambda job, node: frameSegmentation.finishIntoSegmentations(job, [node]),
                           segmentationNode) for n in (1, 2)]
    print(f"Laparoscopic effect, Apply to segments: first {seconds[0]:.2f} s, second {seconds[1]:.2f} s")
    assert seconds[1] < seconds[0] / 2, seconds
    assert segmentLabels.segmentIds(segmentationNode)
