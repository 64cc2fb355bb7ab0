"""The previous model's predictions with their confidence: one pass gives both the argmax and the pseudo-labels
(softmax >= confidence, else 255) that replay and the replay evidence use."""

from __future__ import annotations

import torch

from benchmarks.harness.lap_replay_evidence import class_shares
from distillseg.lap.mib_losses import IGNORE
from distillseg.lap.replay import predict_with_confidence, pseudo_label
from distillseg.lap.segmenter import Segmenter, SegmenterConfig


def _segmenter() -> Segmenter:
    torch.manual_seed(0)
    net = Segmenter(SegmenterConfig(backbone="resnet10"), 4)
    return net.eval()


def test_pseudo_labels_are_the_argmax_where_the_model_is_sure():
    net = _segmenter()
    frames = torch.rand(3, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    labels, sure = predict_with_confidence(net, frames, torch.device("cpu"), batch_size=2)
    assert labels.shape == (3, 64, 96) and labels.dtype == torch.uint8 and sure.shape == (3, 64, 96)
    assert float(sure.min()) >= 0.25 - 1e-6 and float(sure.max()) <= 1  # 4 outputs: the top softmax is >= 1/4
    threshold = float(sure.median())
    kept = pseudo_label(net, frames, threshold, torch.device("cpu"), batch_size=3)
    assert torch.equal(kept[sure >= threshold], labels[sure >= threshold])
    assert bool((kept[sure < threshold] == IGNORE).all()) and bool((sure < threshold).any())
    assert predict_with_confidence(net, frames[:0], torch.device("cpu"))[0].shape == (0, 64, 96)


def test_class_shares_split_every_pixel_and_agree_with_the_replay_pseudo_labels():
    from distillseg.lap.segmenter import frames_to_float

    net = _segmenter()
    images = (torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    _, sure = predict_with_confidence(net, frames_to_float(images), torch.device("cpu"))
    threshold = float(sure.median())  # half the pixels are sure, whatever the untrained network's scale
    shares = class_shares(net, images, confidence=threshold)
    kept = pseudo_label(net, frames_to_float(images), threshold, torch.device("cpu"))
    assert abs(sum(shares["predicted"]) - 1) < 1e-6
    assert shares["pseudo_labelled"] == [float((kept == v).sum()) / kept.numel() for v in range(4)]
    assert 0.3 < sum(shares["pseudo_labelled"]) < 0.7
