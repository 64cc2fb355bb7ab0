"""Training one step's diffusion model on that step's frames (resumable, DDP-aware)."""

from __future__ import annotations

import torch

from distillseg.common.device import autocast, grad_scaler
from distillseg.common.distributed import World, all_reduce_mean, wrap_ddp
from distillseg.lap.diffusion import DiffusionConfig, build_diffusion_net, diffusion_loss
from distillseg.lap.sampling import BatchPlan, augment, iteration_generator, poly_lr

DIFFUSION_LR = 1e-3


def train_diffusion(images: torch.Tensor, config: DiffusionConfig, iterations: int, batch_size: int, seed: int,
                    device: torch.device, amp_dtype, world: World, state, progress_stage,
                    checkpoint_every: int = 50, stage_name: str = "diffusion") -> dict[str, torch.Tensor]:
    """Fit a DDPM to ``images`` (uint8 (N, 3, H, W)); returns the network's state dict (on the CPU)."""
    torch.manual_seed(seed)
    net = build_diffusion_net(config).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=DIFFUSION_LR, weight_decay=0.0)
    start = state.iteration(stage_name)
    if start:
        net.load_state_dict(state.group("diffusion"))
        state.restore_optimizer("diffusion", optimizer)
    scaler = grad_scaler(device, amp_dtype)
    plan = BatchPlan(len(images), batch_size, world, seed)
    model = wrap_ddp(net, device, world)
    model.train()
    for iteration in range(start, iterations):
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(DIFFUSION_LR, iteration, iterations)
        generator = iteration_generator(seed, stage_name, iteration, world.rank)
        frames, _ = augment(images[plan.indices(iteration)], None, generator)
        with autocast(device, amp_dtype):
            loss = diffusion_loss(model, frames.to(device), config, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        progress_stage.update(iteration + 1, loss=float(all_reduce_mean(loss.detach(), world)))
        done = iteration + 1 == iterations
        if (iteration + 1) % checkpoint_every == 0 or done:
            state.record(stage_name, iteration + 1, done=done, groups={"diffusion": net.state_dict()},
                         optimizers={"diffusion": optimizer})
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}
