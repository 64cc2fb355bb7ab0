"""IncrementalLap losses on hand-computed tiny cases, and head growth that changes no prediction."""

from __future__ import annotations

import math

import pytest
import torch

from distillseg.lap.contrastive import MemoryBank, pixel_info_nce, sample_pixels
from distillseg.lap.mib_losses import (IGNORE, new_class_dice, pseudo_label_cross_entropy,
                                               unbiased_cross_entropy, unbiased_distillation)
from distillseg.lap.pod_loss import local_pod_embedding, pod_distillation
from distillseg.lap.segmenter import Segmenter, SegmenterConfig


def _pixels(*rows):
    """logits for a (1, K, 1, N) map from per-pixel rows of K values."""
    return torch.tensor(rows, dtype=torch.float32).T.reshape(1, len(rows[0]), 1, len(rows))


def test_unbiased_cross_entropy_by_hand():
    # outputs: 0 background, 1 old structure, 2 new structure; old model had 2 outputs.
    logits = _pixels([1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [5.0, 5.0, 5.0])
    targets = torch.tensor([[[0, 2, IGNORE]]])
    z = [math.exp(1) + math.exp(2) + 1, 2 + math.exp(3)]
    background_pixel = -math.log((math.exp(1) + math.exp(2)) / z[0])  # P(bg) + P(old)
    new_pixel = -math.log(math.exp(3) / z[1])
    expected = (background_pixel + new_pixel) / 2
    assert unbiased_cross_entropy(logits, targets, old_outputs=2).item() == pytest.approx(expected, rel=1e-6)
    # A target of an old class counts as background (the old model knows it).
    old_target = torch.tensor([[[1, 2, IGNORE]]])
    assert unbiased_cross_entropy(logits, old_target, 2).item() == pytest.approx(expected, rel=1e-6)
    # With no old structures it is the plain cross-entropy.
    plain = torch.nn.functional.cross_entropy(logits, targets, ignore_index=IGNORE)
    assert unbiased_cross_entropy(logits, targets, 1).item() == pytest.approx(plain.item(), rel=1e-6)


def test_unbiased_distillation_by_hand():
    new = _pixels([0.0, 1.0, 2.0])          # bg, old, new
    old = _pixels([1.0, 0.0])               # bg, old
    q_bg, q_old = math.exp(1) / (math.exp(1) + 1), 1 / (math.exp(1) + 1)
    z = 1 + math.exp(1) + math.exp(2)
    log_bg = math.log((1 + math.exp(2)) / z)   # new model's bg ∪ new class
    log_old = math.log(math.exp(1) / z)
    expected = -(q_bg * log_bg + q_old * log_old) / 2
    assert unbiased_distillation(new, old).item() == pytest.approx(expected, rel=1e-6)
    # A model that equals its teacher on the merged outputs has the teacher's entropy / 2 as loss, its minimum.
    assert unbiased_distillation(new, old).item() > unbiased_distillation(
        _pixels([1.0 - math.log(2), 0.0, 1.0 - math.log(2)]), old).item()


def test_pseudo_label_cross_entropy_by_hand():
    logits = _pixels([0.0, 1.0, 2.0], [0.0, 1.0, 2.0])   # bg, old, new
    targets = torch.tensor([[[0, 1]]])                    # old model said: background, old structure
    z = 1 + math.exp(1) + math.exp(2)
    expected = (-math.log((1 + math.exp(2)) / z) - math.log(math.exp(1) / z)) / 2
    assert pseudo_label_cross_entropy(logits, targets, old_outputs=2).item() == pytest.approx(expected, rel=1e-6)


def test_new_class_dice_by_hand():
    # outputs: 0 background, 1 old structure, 2 and 3 new structures; 4 pixels, the last one unlabelled.
    logits = _pixels([0.0, 0.0, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0], [9.0, 9.0, 9.0, 9.0])
    targets = torch.tensor([[[2, 0, 3, IGNORE]]])
    p = torch.softmax(logits[0, :, 0, :3], dim=0)  # (4 classes, 3 labelled pixels)
    dice2 = 2 * p[2, 0] / (p[2].sum() + 1)
    dice3 = 2 * p[3, 2] / (p[3].sum() + 1)
    expected = 1 - (dice2 + dice3) / 2
    assert new_class_dice(logits, targets, old_outputs=2).item() == pytest.approx(expected.item(), rel=1e-4)
    # Certain, correct predictions give no loss; the unlabelled pixel's prediction does not count.
    perfect = _pixels([0.0, 0.0, 50.0, 0.0], [50.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 50.0], [0.0, 0.0, 50.0, 0.0])
    assert new_class_dice(perfect, targets, old_outputs=2).item() == pytest.approx(0.0, abs=1e-5)


def test_local_pod_by_hand():
    # One channel, 2x2 map, pyramid of the whole map only: squared values [[1, 4], [9, 16]].
    features = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    embedding = local_pod_embedding(features, scales=(1,))
    width_pooled = torch.tensor([2.5, 12.5])    # mean over columns of each row
    height_pooled = torch.tensor([5.0, 10.0])   # mean over rows of each column
    expected = torch.cat([width_pooled / width_pooled.norm(), height_pooled / height_pooled.norm()])
    torch.testing.assert_close(embedding[0], expected)
    assert pod_distillation([features], [features.clone()]).item() == pytest.approx(0.0, abs=1e-7)
    other = torch.tensor([[[[2.0, 1.0], [3.0, 4.0]]]])
    difference = local_pod_embedding(features, (1,))[0] - local_pod_embedding(other, (1,))[0]
    assert pod_distillation([features], [other], scales=(1,)).item() == pytest.approx(difference.norm().item())


def test_pixel_info_nce_by_hand():
    anchors = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    tau = 0.5
    # Anchors 0 and 1: positive similarity 1, one negative with similarity 0. Anchor 2 has no positive: skipped.
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(0)))
    assert pixel_info_nce(anchors, labels, None, tau).item() == pytest.approx(expected, rel=1e-6)
    # A bank entry of class 1 along anchor 2 gives it a positive; for anchors 0/1 it is a second negative.
    bank = (torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    first = -math.log(math.exp(2) / (math.exp(2) + 2))
    third = -math.log(math.exp(2) / (math.exp(2) + 2))
    assert pixel_info_nce(anchors, labels, bank, tau).item() == pytest.approx((2 * first + third) / 3, rel=1e-6)


def test_memory_bank_and_pixel_sampling():
    bank = MemoryBank(size=3)
    bank.push(torch.eye(4)[:, :2], torch.tensor([0, 0, 1, 1]))
    bank.push(torch.ones(3, 2), torch.tensor([0, 0, 0]))
    embeddings, labels = bank.contents()
    assert (labels == 0).sum() == 3 and (labels == 1).sum() == 2   # class 0 keeps its newest 3
    maps = torch.randn(2, 4, 3, 3)
    classes = torch.tensor([[[0, 0, 1], [1, 1, 1], [IGNORE, 0, 0]]] * 2)
    picked, picked_labels = sample_pixels(maps, classes, per_class=2, generator=torch.Generator().manual_seed(0))
    assert picked.shape == (4, 4) and sorted(picked_labels.tolist()) == [0, 0, 1, 1]


def test_head_growth_keeps_old_predictions():
    torch.manual_seed(0)
    net = Segmenter(SegmenterConfig(backbone="resnet10", decoder_channels=(16, 16, 8, 8, 8)), num_outputs=4).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = net(x).logits
        net.grow_head(2)
        after = net(x).logits
    assert after.shape[1] == 6
    torch.testing.assert_close(after[:, 1:4], before[:, 1:4], rtol=0, atol=0)    # old structures: identical
    merged = torch.logsumexp(torch.cat([after[:, :1], after[:, 4:]], dim=1), dim=1)
    torch.testing.assert_close(merged, before[:, 0], rtol=1e-6, atol=1e-5)         # bg = bg ∪ new
    torch.testing.assert_close(torch.softmax(after, 1)[:, 1:4], torch.softmax(before, 1)[:, 1:4])
    probs = torch.softmax(after, 1)
    folded = torch.cat([probs[:, :1] + probs[:, 4:].sum(1, keepdim=True), probs[:, 1:4]], dim=1)
    assert torch.equal(folded.argmax(1), before.argmax(1))   # with new classes read as background: same labels


def test_encoder_weights_from_a_local_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    from distillseg.contract.errors import UserError
    from distillseg.lap.encoder_weights import load_encoder_weights

    config = SegmenterConfig(backbone="resnet10", decoder_channels=(16, 16, 8, 8, 8))
    source, target = Segmenter(config, 2), Segmenter(config, 2)
    # torchvision/timm-style names with a prefix and a classifier that the encoder does not have
    state = {f"backbone.{k}": v.clone() for k, v in source.encoder.state_dict().items()}
    state["fc.weight"] = torch.zeros(10, 512)
    save_file(state, str(tmp_path / "enc.safetensors"))
    loaded = load_encoder_weights(target.encoder, str(tmp_path / "enc.safetensors"), "resnet10")
    assert loaded == len(source.encoder.state_dict())
    assert all(torch.equal(target.encoder.state_dict()[k], v) for k, v in source.encoder.state_dict().items())
    save_file({"unrelated": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(UserError, match="holds no tensor of a 2D resnet10 encoder"):
        load_encoder_weights(target.encoder, str(tmp_path / "other.safetensors"), "resnet10")


def test_plop_pseudo_labels_keep_pixels_below_their_class_median_entropy():
    from distillseg.lap.plop_thresholds import median_entropy_thresholds, normalised_entropy
    from distillseg.lap.segmenter_training import _old_model_labels

    # 3 outputs; uniform logits have entropy 1, a one-hot-like row entropy near 0.
    assert normalised_entropy(_pixels([0.0, 0.0, 0.0])).item() == pytest.approx(1.0, abs=1e-6)
    assert normalised_entropy(_pixels([0.0, 0.0, 30.0])).item() == pytest.approx(0.0, abs=1e-6)

    class Fixed(torch.nn.Module):
        """A stand-in old model whose logits are given, with the one attribute the rule reads."""
        num_outputs = 3

        def __init__(self, logits):
            super().__init__()
            self.logits = logits

        def forward(self, frames):
            return type("Out", (), {"logits": self.logits[: len(frames)]})()

    # Five pixels predicted as class 1 with growing uncertainty, three as background.
    logits = _pixels([0.0, 9.0, 0.0], [0.0, 4.0, 0.0], [0.0, 2.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.0],
                     [9.0, 0.0, 0.0], [5.0, 0.0, 0.0], [2.0, 0.0, 0.0])
    thresholds = median_entropy_thresholds(Fixed(logits), torch.zeros(1, 3, 1, 8, dtype=torch.uint8),
                                           torch.device("cpu"))
    entropy = normalised_entropy(logits)[0, 0]
    assert thresholds[1].item() == pytest.approx(entropy[2].item(), rel=1e-6)   # median of pixels 0-4
    assert thresholds[2].item() == 1.0                                          # never predicted
    labels = _old_model_labels(torch.zeros(1, 1, 8, dtype=torch.long), logits, 0.7, True, thresholds)
    # Strictly below their class's median: the two surest structure pixels, the surest background pixel; the
    # others are uncertain and ignored, background ones included (as PLOP does).
    assert labels[0, 0].tolist() == [1, 1, IGNORE, IGNORE, IGNORE, 0, IGNORE, IGNORE]


def test_class_balance_weights_by_hand():
    from distillseg.lap.segmenter_training import class_balance_weights

    # 8 labelled pixels: 6 background, 2 of class 1, none of class 2; 2 pixels without a label.
    labels = torch.tensor([[[0, 0, 0, 0, 0, 0, 1, 1, IGNORE, IGNORE]]], dtype=torch.uint8)
    assert torch.allclose(class_balance_weights(labels, 3, 0.0), torch.ones(3))
    weights = class_balance_weights(labels, 3, 1.0)
    # Inverse frequency: 1/0.75 and 1/0.25, and class 2 counted as one pixel (1/8); mean over labelled pixels = 1.
    raw = torch.tensor([8 / 6, 8 / 2, 8 / 1])
    assert torch.allclose(weights, raw / ((6 * raw[0] + 2 * raw[1]) / 8))
    assert (6 * weights[0] + 2 * weights[1]) / 8 == pytest.approx(1.0)
    half = class_balance_weights(labels, 3, 0.5)
    assert half[1] / half[0] == pytest.approx(math.sqrt(3.0))


def test_the_base_step_weighs_its_cross_entropy_by_class_balance():
    import torch.nn.functional as F

    from distillseg.common.distributed import World
    from distillseg.lap.segmenter_training import LoopOptions, SegmenterTrainer, class_balance_weights

    torch.manual_seed(0)
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    labels = torch.zeros((2, 32, 32), dtype=torch.uint8)
    labels[:, :4, :4] = 1                          # a small structure: 1.6 % of the pixels
    labels[:, -2:, :] = IGNORE
    logits = torch.randn(2, 2, 32, 32)
    y = labels.long()
    losses = {}
    for power in (0.0, 1.0):
        trainer = SegmenterTrainer(Segmenter(SegmenterConfig(backbone="resnet10"), 2), images, labels,
                                   LoopOptions(1, batch_size=2, class_balance=power), torch.device("cpu"), None,
                                   World())
        losses[power] = trainer._base_loss(logits, y)[1]["ce"]
    weights = class_balance_weights(labels, 2, 1.0)
    assert losses[0.0] == pytest.approx(float(F.cross_entropy(logits, y, ignore_index=IGNORE)), rel=1e-6)
    assert losses[1.0] == pytest.approx(float(F.cross_entropy(logits, y, weight=weights, ignore_index=IGNORE)),
                                        rel=1e-6)
    assert losses[1.0] != pytest.approx(losses[0.0], rel=1e-3)


def test_weighted_unbiased_cross_entropy_by_hand():
    # outputs: 0 background, 1 old structure, 2 new structure; old model had 2 outputs.
    logits = _pixels([1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [5.0, 5.0, 5.0])
    targets = torch.tensor([[[0, 2, IGNORE]]])
    z = [math.exp(1) + math.exp(2) + 1, 2 + math.exp(3)]
    background_pixel = -math.log((math.exp(1) + math.exp(2)) / z[0])
    new_pixel = -math.log(math.exp(3) / z[1])
    # The merged background takes the background's weight (0.5); the old output's own weight (7) is never used.
    weight = torch.tensor([0.5, 7.0, 3.0])
    expected = (0.5 * background_pixel + 3.0 * new_pixel) / (0.5 + 3.0)
    assert unbiased_cross_entropy(logits, targets, 2, weight=weight).item() == pytest.approx(expected, rel=1e-6)
    assert unbiased_cross_entropy(logits, targets, 2, weight=torch.ones(3)).item() == pytest.approx(
        unbiased_cross_entropy(logits, targets, 2).item(), rel=1e-6)


def test_step_class_weights_give_old_structures_the_background_weight():
    from distillseg.lap.segmenter_training import class_balance_weights, step_class_weights

    # A step's labels: background and the new class 3 only (old structures 1, 2 are labelled background).
    labels = torch.tensor([[[0, 0, 0, 0, 0, 0, 3, 3, IGNORE]]], dtype=torch.uint8)
    weights = step_class_weights(labels, 4, old_outputs=3, power=1.0)
    base = class_balance_weights(labels, 4, 1.0)
    assert weights[1] == weights[2] == weights[0] == base[0]
    assert weights[3] == base[3] and weights[3] / weights[0] == pytest.approx(3.0)
    assert torch.allclose(step_class_weights(labels, 4, 3, 0.0), torch.ones(4))
    assert torch.equal(step_class_weights(labels, 4, 1, 1.0), base)  # no old structures: the base step's weights


def test_a_learning_step_weighs_its_cross_entropy_by_class_balance():
    """``lap learn --class-balance``: the real frames' cross-entropy of every strategy (plain, MiB's unbiased, and
    on PLOP's pseudo-labels) takes the step's class weights; 0 leaves it unweighted."""
    import torch.nn.functional as F

    from distillseg.common.distributed import World
    from distillseg.lap.segmenter_training import (LoopOptions, SegmenterTrainer, StepInputs, _old_model_labels,
                                                   step_class_weights)
    from distillseg.lap.strategies import strategy_named

    torch.manual_seed(0)
    old = Segmenter(SegmenterConfig(backbone="resnet10"), 2).eval()
    with torch.no_grad():
        old.head.bias.copy_(torch.tensor([4.0, 0.0]))   # sure of background nearly everywhere: few pixels ignored
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    labels = torch.zeros((2, 32, 32), dtype=torch.uint8)
    labels[:, :4, :4] = 2                           # the new structure: 1.6 % of the pixels
    labels[:, -2:, :] = IGNORE
    x, y = images.float() / 255, labels.long()
    logits = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        old_out = old(x)
    weights = step_class_weights(labels, 3, 2, 1.0)
    pseudo = _old_model_labels(y, old_out.logits, 0.7, ignore_uncertain=True)
    expected = {"finetune": F.cross_entropy(logits, y, weight=weights, ignore_index=IGNORE),
                "mib": unbiased_cross_entropy(logits, y, 2, weight=weights),
                "plop": F.cross_entropy(logits, pseudo, weight=weights, ignore_index=IGNORE)}
    for name, wanted in expected.items():
        strategy = strategy_named(name, pseudo_labels=name == "plop", kd_weight=0.0, pod_weight=0.0)
        ce = {}
        for power in (0.0, 1.0):
            net = Segmenter(SegmenterConfig(backbone="resnet10"), 2)
            net.grow_head(1)
            trainer = SegmenterTrainer(net, images, labels, LoopOptions(1, batch_size=2, class_balance=power),
                                       torch.device("cpu"), None, World(), StepInputs(strategy, old, 2))
            ce[power] = trainer._step_loss(type("Out", (), {"logits": logits})(), old_out, y, 2)[1]["ce"]
        assert ce[1.0] == pytest.approx(float(wanted), rel=1e-5), name
        assert ce[1.0] != pytest.approx(ce[0.0], rel=1e-3), name
