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


def _frames_with_a_dot(batch: int = 16, height: int = 40, width: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames whose only structure is a 2x2 dot (label 3, 0.16 % of the pixels) at a different place in each frame,
    beside a large structure (label 1, the left quarter) and a band of unlabelled pixels (255)."""
    labels = torch.zeros(batch, height, width, dtype=torch.uint8)
    labels[:, :, : width // 4] = 1
    labels[:, -3:] = 255
    for k in range(batch):
        row, column = 2 + (k * 7) % (height - 8), width // 4 + 2 + (k * 11) % (width // 2)
        labels[k, row:row + 2, column:column + 2] = 3
    frames = (labels * 60).clamp(max=250)[:, None].expand(batch, 3, height, width).contiguous()
    return frames, labels


def test_focus_centres_windows_on_small_structures():
    frames, labels = _frames_with_a_dot()
    seen = {0.0: 0, 1.0: 0}
    for focus in seen:
        for iteration in range(8):
            x, y = augment(frames, labels, iteration_generator(5, "segmenter", iteration), zoom=0.3, crop=(20, 32),
                           focus=focus)
            assert x.shape == (16, 3, 20, 32) and y.shape == (16, 20, 32)
            # Windows stay inside the frame and carry their labels: the grey level still ranks as the label does.
            assert set(y.unique().tolist()) <= {0, 1, 3, 255}
            for k in range(16):
                if (y[k] == 3).any() and (y[k] == 0).any():
                    assert x[k, 0][y[k] == 3].median() > x[k, 0][y[k] == 0].median() + 0.3
            seen[focus] += int(sum(bool((y[k] == 3).any()) for k in range(16)))
    # Random places rarely hit a 2x2 dot; focus draws the dot or the large structure with equal chance, and the
    # window then holds the structure it was centred on.
    assert seen[1.0] >= 0.4 * 8 * 16 > seen[0.0]


def test_focus_zero_draws_what_it_drew_before_and_focus_is_reproducible():
    frames, labels = _frames_with_a_dot()
    generator = iteration_generator(2, "segmenter", 9)
    plain = augment(frames, labels, generator, zoom=0.5)
    zero = augment(frames, labels, iteration_generator(2, "segmenter", 9), zoom=0.5, focus=0.0)
    assert torch.equal(plain[0], zero[0]) and torch.equal(plain[1], zero[1])
    first = augment(frames, labels, iteration_generator(2, "segmenter", 9), zoom=0.5, focus=0.7)
    again = augment(frames, labels, iteration_generator(2, "segmenter", 9), zoom=0.5, focus=0.7)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    # Frames with nothing but background and unlabelled pixels keep a random place and do not fail.
    empty = torch.where(labels == 255, labels, torch.zeros_like(labels))
    x, y = augment(frames, empty, iteration_generator(2, "segmenter", 9), zoom=0.5, focus=1.0)
    assert set(y.unique().tolist()) <= {0, 255}
