"""RGB frames on a real headless Slicer scene: Pillow file -> one-slice vector volume (pixels and Slicer's PNG
geometry) -> the PNG the engine reads -> the engine's index PNG back as a segmentation on the frame's exact grid,
for plain and oblique frames; non-frames refused with a sentence; the synthetic-data tag."""

from __future__ import annotations

import numpy as np
import pytest
import vtk
import vtk.util.numpy_support
from PIL import Image

from mrml_fixtures import scene, slicerApp  # noqa: F401  (pytest fixtures)
from distillseg.contract.frames import read_frame, write_index_png
from distillseg.contract.frames import SYNTHETIC_MARKER
from IncrementalLapLib import frameVolumes
from DistillSegKernelLib import segmentLabels, volumeFiles
from distillseg.contract.labels import LabelEntry, LabelTable

import slicer

TABLE = LabelTable([LabelEntry(1, "liver", (140, 40, 40)), LabelEntry(2, "colon", (200, 140, 60)),
                    LabelEntry(4, "stomach", (190, 110, 120))])


def _rgbFrame(rng, rows=48, columns=64) -> np.ndarray:
    frame = rng.integers(0, 256, (rows, columns, 3), dtype=np.uint8)
    frame[0, 0] = (255, 0, 0)  # row 0, column 0: red, so a flip or transpose shows
    frame[0, -1] = (0, 255, 0)
    return frame


def _labels(rows=48, columns=64) -> np.ndarray:
    labels = np.zeros((rows, columns), np.uint8)
    labels[3:10, 5:30] = 1
    labels[20:40, 40:60] = 4  # a gap in the values on purpose: value 4 must stay 4
    labels[0, :3] = 2  # touching the first row: an off-by-one row would lose it
    return labels


def test_frame_file_to_vector_volume_with_slicer_png_geometry(scene, tmp_path):
    rgb = _rgbFrame(np.random.default_rng(0))
    Image.fromarray(rgb).save(tmp_path / "frame.png")
    Image.fromarray(rgb).save(tmp_path / "frame.tif")
    for path in (tmp_path / "frame.png", tmp_path / "frame.tif"):
        node = frameVolumes.loadFrame(path, scene)
        assert node.IsA("vtkMRMLVectorVolumeNode")
        array = slicer.util.arrayFromVolume(node)
        assert array.shape == (1, 48, 64, 3) and np.array_equal(array[0], rgb)  # row 0 = j 0, column 0 = i 0
        expected = np.diag([-1.0, -1.0, 1.0, 1.0])  # Slicer's PNG reader: LPS identity, spacing 1, origin 0
        assert np.array_equal(volumeFiles.ijkToRas(node), expected)
        assert node.GetAttribute(frameVolumes.SOURCE_FILE_ATTRIBUTE) == str(path)
        assert node.GetAttribute(frameVolumes.PATIENT_ATTRIBUTE) == tmp_path.name
        assert np.array_equal(frameVolumes.frameArray(node), rgb)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    assert np.array_equal(frameVolumes.frameArray(frameVolumes.loadFrame(tmp_path / "alpha.png", scene)), rgb)


@pytest.mark.parametrize("oblique", [False, True], ids=["png-geometry", "oblique-under-transform"])
def test_frame_to_engine_file_and_labels_back_on_the_exact_grid(scene, tmp_path, oblique):
    rgb = _rgbFrame(np.random.default_rng(1))
    frameNode = frameVolumes.addFrameNode(scene, rgb, "frame")
    if oblique:  # a frame from elsewhere (a video's own geometry), under a parent transform
        frameNode.SetSpacing(0.3, 0.45, 2.0)
        frameNode.SetOrigin(12.0, -7.5, 40.0)
        frameNode.SetIJKToRASDirections(0.0, 1.0, 0.0, -0.8, 0.0, 0.6, 0.6, 0.0, 0.8)
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
        matrix = vtk.vtkMatrix4x4()
        matrix.SetElement(0, 3, 25.0)
        transform.SetMatrixTransformToParent(matrix)
        frameNode.SetAndObserveTransformNodeID(transform.GetID())
    enginePng = frameVolumes.writeFrameFile(frameNode, tmp_path / "to engine.png")
    assert np.array_equal(read_frame(enginePng), rgb)  # what the engine reads is exactly the node's pixels

    labels = _labels()
    write_index_png(tmp_path / "from engine.png", labels)  # the engine's output format (lap segment)
    labelmapNode = frameVolumes.readLabelsOnFrame(tmp_path / "from engine.png", frameNode)
    assert volumeFiles.sameGrid(labelmapNode, frameNode, toleranceMm=0.0)
    assert labelmapNode.GetTransformNodeID() == frameNode.GetTransformNodeID()
    segmentationNode = segmentLabels.newSegmentationFor(frameNode, "frame segmentation")
    valueToId = segmentLabels.importLabelmap(labelmapNode, TABLE, segmentationNode)
    assert valueToId == {1: "Label_1", 2: "Label_2", 4: "Label_4"}
    segmentation = segmentationNode.GetSegmentation()
    assert [segmentation.GetSegment(valueToId[v]).GetName() for v in (1, 2, 4)] == ["liver", "colon", "stomach"]
    assert np.allclose(segmentation.GetSegment("Label_4").GetColor(), np.array([190, 110, 120]) / 255.0)
    back = segmentLabels.mergedLabelArray(segmentationNode, frameNode, list(valueToId.values()), list(valueToId))
    assert back.shape == (1, 48, 64) and np.array_equal(back[0], labels)


def test_the_segment_editor_gives_effects_channel_0_the_node_gives_rgb(scene, tmp_path):
    """Why the Laparoscopic effect reads its frame from the source volume node: the editor's aligned source image
    (what ``scriptedEffect.sourceVolumeImageData()`` returns) holds channel 0 only."""
    rgb = _rgbFrame(np.random.default_rng(4))
    frameNode = frameVolumes.addFrameNode(scene, rgb, "frame")
    segmentationNode = segmentLabels.newSegmentationFor(frameNode)
    editorNode = scene.AddNewNodeByClass("vtkMRMLSegmentEditorNode")
    editor = slicer.vtkSlicerSegmentEditorLogic()
    editor.SetMRMLScene(scene)
    editor.SetSegmentEditorNode(editorNode)
    editor.SetSegmentationNode(segmentationNode)
    editor.SetSourceVolumeNode(frameNode)
    editor.UpdateReferenceGeometryImage()
    editor.UpdateAlignedSourceVolume()
    aligned = editor.GetAlignedSourceVolume()
    assert aligned.GetNumberOfScalarComponents() == 1
    channel0 = vtk.util.numpy_support.vtk_to_numpy(aligned.GetPointData().GetScalars()).reshape(48, 64)
    assert np.array_equal(channel0, rgb[..., 0])
    assert np.array_equal(read_frame(frameVolumes.writeFrameFile(frameNode, tmp_path / "f.png")), rgb)


def test_engine_labels_of_another_size_are_refused(scene, tmp_path):
    frameNode = frameVolumes.addFrameNode(scene, _rgbFrame(np.random.default_rng(2)), "frame")
    write_index_png(tmp_path / "labels.png", np.zeros((48, 63), np.uint8))
    with pytest.raises(frameVolumes.FrameError, match=r"labels.png: the engine's label map is 63x48 pixels but "
                                                      r"frame 'frame' is 64x48"):
        frameVolumes.readLabelsOnFrame(tmp_path / "labels.png", frameNode)


def test_non_frames_are_refused_with_a_sentence(scene, tmp_path):
    grey = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "ct")
    slicer.util.updateVolumeFromArray(grey, np.zeros((1, 8, 8), np.int16))
    with pytest.raises(frameVolumes.FrameError, match="Volume 'ct' has 1 channel"):
        frameVolumes.frameArray(grey)
    stack = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "stack")
    slicer.util.updateVolumeFromArray(stack, np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(frameVolumes.FrameError, match="Volume 'stack' has 3 slices"):
        frameVolumes.frameArray(stack)
    assert not frameVolumes.isFrame(grey) and not frameVolumes.isFrame(stack)
    Image.fromarray(np.zeros((16, 16), np.uint8), "L").save(tmp_path / "grey.png")
    with pytest.raises(Exception, match=r"grey.png: is a L \(grey or single-channel\) image"):
        frameVolumes.loadFrame(tmp_path / "grey.png", scene)
    (tmp_path / "empty").mkdir()
    with pytest.raises(frameVolumes.FrameError, match="holds no PNG/JPEG/TIFF frames"):
        frameVolumes.loadFrameFolder(tmp_path / "empty", scene)


def test_frame_folder_and_the_synthetic_tag(scene, tmp_path):
    folder = tmp_path / "generated" / "patiënt 07"  # spaces and non-ASCII, as users have them
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name in ("b.jpg", "a.png", ".hidden.png"):
        Image.fromarray(_rgbFrame(rng)).save(folder / name)
    (folder / "notes.txt").write_text("not a frame")
    nodes = frameVolumes.loadFrameFolder(folder, scene)
    assert [n.GetName() for n in nodes] == ["a", "b"]
    assert all(frameVolumes.framePatient(n) == "patiënt 07" and not frameVolumes.frameIsSynthetic(n) for n in nodes)
    (tmp_path / "generated" / SYNTHETIC_MARKER).write_text("synthetic")
    assert all(frameVolumes.frameIsSynthetic(n) for n in frameVolumes.loadFrameFolder(folder, scene))
