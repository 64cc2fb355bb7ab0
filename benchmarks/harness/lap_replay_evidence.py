"""What the diffusion replay of a base model produces, measured against the real frames it stands in for.

For ``benchmarks.lap_endoscapes``: the base model's diffusion model generates replay frames exactly as a later
``lap learn`` step would (``distillseg.lap.replay.generate_replay``); they are compared with the base step's real
training frames (which the later steps no longer have) and with frames of other patients:

- a grid of replayed frames beside real ones (figure);
- the share of pixels the base segmenter assigns to each of its classes on replayed vs real frames, and the share of
  pixels its pseudo-labels keep (confident) — replay teaches the old structures only where they appear;
- the Fréchet distance (MONAI ``FIDMetric``) between the base segmenter's encoder features (stride 8, global
  average pooled: 128 numbers per frame) of replayed and real frames, beside the same distance between two sets of
  real frames from different patients (the natural gap) and between real frames and blurred noise (a floor).

Shapes: frames uint8 (N, 3, H, W) on the model's working grid.
"""

from __future__ import annotations

from pathlib import Path

import torch

CAPTION = ("Real frames: Endoscapes-Seg50 (Murali et al. 2023, CAMMA), CC BY-NC-SA 4.0. Replayed frames: generated "
           "by the base model's diffusion model (synthetic).")


@torch.no_grad()
def encoder_features(segmenter, images: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> (N, C) the segmenter's stride-8 encoder features, averaged over the frame."""
    from distillseg.lap.segmenter import frames_to_float

    segmenter.eval()
    out = []
    for start in range(0, len(images), batch_size):
        encoded = segmenter(frames_to_float(images[start:start + batch_size]), features=True).encoder
        out.append(encoded[2].float().mean(dim=(2, 3)))
    return torch.cat(out)


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to feature sets (N, C) and (M, C) (MONAI ``FIDMetric``)."""
    from monai.metrics import FIDMetric

    return float(FIDMetric()(a.double(), b.double()))


@torch.no_grad()
def class_shares(segmenter, images: torch.Tensor, confidence: float) -> dict[str, list[float]]:
    """Per output of ``segmenter``: the share of pixels it predicts (argmax) and the share its pseudo-labels keep
    (argmax with softmax >= ``confidence``) on ``images``."""
    from distillseg.lap.replay import predict_with_confidence
    from distillseg.lap.segmenter import frames_to_float

    labels, sure = predict_with_confidence(segmenter, frames_to_float(images), torch.device("cpu"))
    kept = sure >= confidence
    outputs = segmenter.num_outputs
    total = labels.numel()
    return {"predicted": [float((labels == v).sum()) / total for v in range(outputs)],
            "pseudo_labelled": [float(((labels == v) & kept).sum()) / total for v in range(outputs)]}


def blurred_noise(count: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """uint8 (count, 3, H, W) smooth random colour fields: a "frame" with no anatomy, as the distance's floor."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, size[0] // 16, size[1] // 16, generator=generator)
    smooth = torch.nn.functional.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    return (smooth.clamp(0, 1) * 255).round().to(torch.uint8)


def replay_evidence(base_model: Path, data: Path, protocol: dict, count: int, seed: int, figure: Path) -> dict:
    """Replay ``count`` frames from ``base_model`` and compare them with the real frames (see module docstring);
    writes the grid figure to ``figure``; returns the numbers for the report."""
    from distillseg.common.progress import Progress
    from distillseg.lap.data import read_frames
    from distillseg.lap.model_bundle import load_lap_model
    from distillseg.lap.replay import generate_replay

    device = torch.device("cpu")
    model = load_lap_model(base_model)
    segmenter = model.build(device)
    confidence = 0.7
    replayed, _ = generate_replay(model, segmenter, count, confidence, device, None, seed)
    names = model.registry.names
    values = {n: model.registry.value_of(n) for n in names}
    quiet = Progress("none")
    options = {"unknown_values": "skip"}

    def real(patients: list[str]) -> torch.Tensor:
        return read_frames(data, names, values, model.size, quiet, patients=patients, **options).images

    base_real = real(protocol["steps"][0]["patients"])
    other_real = real(protocol["steps"][1]["patients"])
    noise = blurred_noise(count, model.size, seed)
    features = {k: encoder_features(segmenter, v) for k, v in
                {"replayed": replayed, "base_real": base_real, "other_real": other_real, "noise": noise}.items()}
    result = {
        "count": {"replayed": len(replayed), "base_real": len(base_real), "other_real": len(other_real)},
        "feature": "base segmenter encoder, stride 8, global average (128 values per frame)",
        "frechet": {"replayed_vs_base_real": frechet(features["replayed"], features["base_real"]),
                    "other_patients_vs_base_real": frechet(features["other_real"], features["base_real"]),
                    "noise_vs_base_real": frechet(features["noise"], features["base_real"])},
        "classes": ["background", *names],
        "shares": {"replayed": class_shares(segmenter, replayed, confidence),
                   "base_real": class_shares(segmenter, base_real, confidence),
                   "other_real": class_shares(segmenter, other_real, confidence)},
        "confidence": confidence,
    }
    _grid(replayed, base_real, figure)
    return result


def _grid(replayed: torch.Tensor, real: torch.Tensor, path: Path, columns: int = 6) -> None:
    """Two rows of frames: replayed (top) and real base-step frames (bottom)."""
    from benchmarks.harness.figures import pyplot, save

    columns = min(columns, len(replayed), len(real))
    fig, axes = pyplot().subplots(2, columns, figsize=(2.2 * columns, 3.2))
    step = max(1, len(real) // columns)
    for k in range(columns):
        for row, (frames, index, label) in enumerate(((replayed, k, "replayed"), (real, k * step, "real"))):
            axes[row, k].imshow(frames[index].permute(1, 2, 0).numpy())
            axes[row, k].set_axis_off()
            if k == 0:
                axes[row, k].set_title(label, fontsize=9, loc="left")
    save(fig, path, dpi=100, title="Diffusion replay of the base model (top) and real base-step frames (bottom)",
         caption=CAPTION)
