"""Diffusion replay: an unconditional DDPM of one step's frames (MONAI ``DiffusionModelUNet`` + ``DDPMScheduler``),
sampled with ``DDIMScheduler`` (50 steps by default).

The model works on a reduced grid (``DiffusionConfig.size``, by default half the segmenter's working size) with
frames scaled to [-1, 1]; samples are resized to the working size by the caller. Its weights are kept in the model
bundle so later steps can replay the look of this step's patients without any of their frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DiffusionConfig:
    size: tuple[int, int] = (64, 80)            # (H, W) of generated frames before resizing
    channels: tuple[int, ...] = (32, 64, 64)
    num_res_blocks: int = 1
    num_head_channels: int = 32
    train_timesteps: int = 1000
    sample_steps: int = 50

    def to_json(self) -> dict:
        data = asdict(self)
        return {**data, "size": list(self.size), "channels": list(self.channels)}

    @classmethod
    def from_json(cls, data: dict) -> "DiffusionConfig":
        return cls(size=tuple(int(s) for s in data["size"]), channels=tuple(int(c) for c in data["channels"]),
                   num_res_blocks=int(data["num_res_blocks"]), num_head_channels=int(data["num_head_channels"]),
                   train_timesteps=int(data["train_timesteps"]), sample_steps=int(data["sample_steps"]))


def build_diffusion_net(config: DiffusionConfig) -> torch.nn.Module:
    from monai.networks.nets import DiffusionModelUNet

    return DiffusionModelUNet(spatial_dims=2, in_channels=3, out_channels=3, channels=config.channels,
                              attention_levels=(False,) * len(config.channels), num_res_blocks=config.num_res_blocks,
                              num_head_channels=config.num_head_channels)


def to_diffusion_grid(frames: torch.Tensor, config: DiffusionConfig) -> torch.Tensor:
    """float frames (B, 3, H, W) in [0, 1] -> (B, 3, h, w) in [-1, 1] on the diffusion grid."""
    if tuple(frames.shape[-2:]) != tuple(config.size):
        frames = F.interpolate(frames, size=config.size, mode="bilinear", antialias=True, align_corners=False)
    return frames * 2 - 1


def diffusion_loss(net: torch.nn.Module, frames: torch.Tensor, config: DiffusionConfig,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """DDPM noise-prediction loss (MSE) on float frames (B, 3, H, W) in [0, 1] at random timesteps."""
    from monai.networks.schedulers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=config.train_timesteps)
    x0 = to_diffusion_grid(frames, config)
    noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device)
    timesteps = torch.randint(0, config.train_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
    noisy = scheduler.add_noise(original_samples=x0, noise=noise, timesteps=timesteps)
    return F.mse_loss(net(noisy, timesteps).float(), noise)


@torch.no_grad()
def sample_frames(net: torch.nn.Module, count: int, config: DiffusionConfig, device: torch.device,
                  generator: torch.Generator | None = None, batch_size: int = 16, steps: int | None = None,
                  amp=None, on_batch=None) -> torch.Tensor:
    """``count`` frames from noise by DDIM (deterministic, eta = 0): float (count, 3, h, w) in [0, 1].

    ``amp`` is a callable returning an autocast context; ``on_batch(done)`` is called after each batch.
    """
    from monai.networks.schedulers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=config.train_timesteps)
    scheduler.set_timesteps(steps or config.sample_steps)
    net.eval()
    out = []
    for start in range(0, count, batch_size):
        n = min(batch_size, count - start)
        x = torch.randn((n, 3, *config.size), generator=generator, device="cpu").to(device)
        for t in scheduler.timesteps:
            with amp() if amp else torch.autocast(device.type, enabled=False):
                eps = net(x, torch.full((n,), int(t), device=device, dtype=torch.long)).float()
            x, _ = scheduler.step(eps, int(t), x)
        out.append(((x.clamp(-1, 1) + 1) / 2).cpu())
        if on_batch is not None:
            on_batch(start + n)
    return torch.cat(out) if out else torch.empty((0, 3, *config.size))
