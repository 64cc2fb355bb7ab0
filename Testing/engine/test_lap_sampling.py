"""The segmenter's augmentation: zoom crops keep frames and labels aligned, stay within the frame, and are a pure
function of the generator (a resumed run draws the same crops)."""

from __future__ import annotations

import torch

from distillseg.lap.sampling import augment, iteration_generator


def _coded_frames(batch: int = 4, height: int = 32, width: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames whose red channel is the label (5 vertical bands) and green channel the row: a crop that moved the
    frame but not its labels would show."""
    labels = (torch.arange(width) * 5 // width).expand(batch, height, width).to(torch.uint8)
    frames = torch.zeros(batch, 3, height, width, dtype=torch.uint8)
    frames[:, 0] = labels * 50
    frames[:, 1] = (torch.arange(height) * 255 // (height - 1))[:, None].to(torch.uint8)
    return frames, labels


def test_zoom_crops_keep_frames_and_labels_together():
    frames, labels = _coded_frames()
    x, y = augment(frames, labels, iteration_generator(3, "segmenter", 7), zoom=0.5)
    assert x.shape == (4, 3, 32, 48) and y.shape == (4, 32, 48) and y.dtype == torch.uint8
    assert set(y.unique().tolist()) <= set(range(5))
    # Undo the colour gain/offset by comparing label bands: the red level must rank as the label does.
    for k in range(4):
        for value in y[k].unique().tolist():
            inside = x[k, 0][y[k] == value]
            others = x[k, 0][(y[k] - value).abs() >= 2]
            if len(others):
                assert (inside.median() - others.median()).abs() > 0.1
    # Zoomed in: fewer distinct label bands or rows than the whole frame shows, on at least one frame.
    assert any(len(y[k].unique()) < 5 or x[k, 1].max() - x[k, 1].min() < 0.9 for k in range(4))


def test_zoom_one_is_the_plain_augmentation_and_crops_are_reproducible():
    frames, labels = _coded_frames()
    plain = augment(frames, labels, iteration_generator(1, "segmenter", 2))
    same = augment(frames, labels, iteration_generator(1, "segmenter", 2), zoom=1.0)
    assert torch.equal(plain[0], same[0]) and torch.equal(plain[1], same[1])
    first = augment(frames, labels, iteration_generator(1, "segmenter", 2), zoom=0.4)
    again = augment(frames, labels, iteration_generator(1, "segmenter", 2), zoom=0.4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], plain[1])


def test_zoom_without_labels_for_the_diffusion_frames():
    frames, _ = _coded_frames()
    x, y = augment(frames, None, iteration_generator(0, "diffusion", 0), zoom=0.6)
    assert y is None and x.shape == frames.shape and 0 <= float(x.min()) and float(x.max()) <= 1
