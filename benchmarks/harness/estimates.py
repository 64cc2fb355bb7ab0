"""Paper figures for a GPU we could not measure on: FLOPs and activation memory computed from the engine's own
networks, turned into time and memory estimates with stated device assumptions.

Everything here is counted on the CPU with the real networks (``distillseg.oneshot``), at the 2 mm working grid
(80×96×112), and scaled by the voxel count to other grids: every layer of these fully convolutional networks costs
in proportion to the voxels it sees, so a grid with 8× the voxels (1 mm) costs exactly 8× (sizes are multiples of
16, so every level halves exactly).

- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` over a forward (and forward + backward) pass.
- Activation memory of a training step: the bytes of the distinct tensors autograd saves for the backward pass
  (``torch.autograd.graph.saved_tensors_hooks``), with and without bf16 autocast and gradient checkpointing.
- Memory traffic of an inference pass: bytes read and written by every leaf module (input + output tensors),
  a lower bound of what the GPU's memory must move.

Estimated GPU time = max(FLOPs / (peak × efficiency), traffic / bandwidth). The assumptions are listed in
``GPU_ASSUMPTIONS`` and printed in every report next to the figures, which are labelled as estimates.
"""

from __future__ import annotations

import torch

GPU_ASSUMPTIONS = {
    "H100 SXM": {"bf16_dense_tflops": 989.0, "fp32_tflops": 67.0, "memory_tb_s": 3.35,
                 "conv3d_efficiency": 0.25, "memory_efficiency": 0.6,
                 "note": "peak figures from NVIDIA's H100 datasheet; 25 % of bf16 peak for small-channel 3D "
                         "convolutions and 60 % of HBM bandwidth are our assumptions, not measurements"},
}
BASE_GRID = (80, 96, 112)


def voxels(shape) -> int:
    """Voxels of a grid of ``shape`` (three sizes)."""
    return int(shape[0]) * int(shape[1]) * int(shape[2])


def student_network(classes: int = 36):
    from distillseg.oneshot.distill import DistillOptions, build_networks

    teacher, student = build_networks(DistillOptions(), classes)
    return teacher, student


def count_flops(module, inputs, backward: bool = False) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        output = module(*inputs)
        if backward:
            first = output[0] if isinstance(output, (tuple, list)) else output
            first.float().square().mean().backward()
    return int(counter.get_total_flops())


class _SavedBytes:
    """Bytes of the distinct storages autograd saves for backward while the context is open."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, tensor):
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @property
    def total(self) -> int:
        return sum(self.storages.values())


def network_input(network, grid=BASE_GRID) -> torch.Tensor:
    """A random input of ``network``'s channels: the image, plus the atlas prior's channels for a student with one."""
    return torch.rand(1, network.config["in_channels"] + network.config.get("prior_channels", 0), *grid)


def saved_activation_bytes(classes: int, grid=BASE_GRID, bf16: bool = False, checkpointing: bool = False) -> int:
    """Activation bytes a joint teacher + student training step keeps for backward (DESIGN §4 step 3)."""
    from distillseg.oneshot.distill import DistillationObjective, DistillOptions, build_networks

    options = DistillOptions(checkpointing=checkpointing)
    teacher, student = build_networks(options, classes)
    objective = DistillationObjective(teacher, student, options).train()
    image = torch.rand(1, 1, *grid)
    classes_map = torch.randint(0, classes, (1, 1, *grid))
    prior = network_input(student, grid)[:, 1:] if options.atlas_prior else None
    saved = _SavedBytes()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        loss, _ = objective(image, classes_map, image, context, prior)
    del loss
    return saved.total


def augmenter_saved_bytes(grid=BASE_GRID, bf16: bool = False, pairs: int = 2) -> int:
    """Activation bytes an augmenter training step (``pairs`` image pairs) keeps for backward."""
    from distillseg.oneshot.train_augmenter import AugmenterObjective, AugmenterOptions, build_augmenter

    options = AugmenterOptions()
    objective = AugmenterObjective(build_augmenter(options), options).train()
    moving, fixed = torch.rand(pairs, 1, *grid), torch.rand(pairs, 1, *grid)
    saved = _SavedBytes()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False)
    with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
        loss, _ = objective(moving, fixed, context)
    del loss
    return saved.total


def inference_traffic_bytes(network, grid=BASE_GRID, bytes_per_value: int = 2) -> int:
    """Bytes read + written by every leaf module of one forward pass (values at ``bytes_per_value``)."""
    total = [0]

    def hook(module, inputs, output):
        outputs = output if isinstance(output, (tuple, list)) else [output]
        tensors = [t for t in (*inputs, *outputs) if isinstance(t, torch.Tensor)]
        total[0] += sum(t.numel() for t in tensors) * bytes_per_value

    handles = [m.register_forward_hook(hook) for m in network.modules() if not list(m.children())]
    with torch.no_grad():
        network.eval()(network_input(network, grid))
    for handle in handles:
        handle.remove()
    return total[0]


def parameter_bytes(*networks) -> int:
    """fp32 weights + gradients + Adam's two moments."""
    return 4 * 4 * sum(p.numel() for n in networks for p in n.parameters())


def network_figures(classes: int = 36) -> dict:
    """FLOPs, activation and traffic bytes at ``BASE_GRID`` (to be scaled by voxels), measured with the real
    networks on the CPU."""
    teacher, student = student_network(classes)
    image, student_input = torch.rand(1, 1, *BASE_GRID), network_input(student)
    with torch.no_grad():
        forward = count_flops(student.eval(), [student_input])
    student.train()
    teacher.train()
    train_student = count_flops(student, [student_input], backward=True)
    train_teacher = count_flops(teacher, [image], backward=True)
    return {
        "grid": list(BASE_GRID), "classes": classes,
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "student_forward_flops": forward,
        "distill_step_flops": train_student + train_teacher,
        "inference_traffic_bytes_bf16": inference_traffic_bytes(student),
        "distill_saved_bytes": {"fp32": saved_activation_bytes(classes),
                                "bf16": saved_activation_bytes(classes, bf16=True),
                                "bf16_checkpointing": saved_activation_bytes(classes, bf16=True, checkpointing=True),
                                "fp32_checkpointing": saved_activation_bytes(classes, checkpointing=True)},
        "augmenter_saved_bytes": {"fp32": augmenter_saved_bytes(), "bf16": augmenter_saved_bytes(bf16=True)},
        "optimizer_state_bytes": parameter_bytes(teacher, student),
    }


def scale(figures: dict, grid) -> float:
    """Voxel ratio of ``grid`` to the grid the figures were counted on."""
    return voxels(grid) / voxels(figures["grid"])


def gpu_inference_seconds(figures: dict, grid, gpu: str = "H100 SXM") -> dict:
    """Estimated bf16 forward time of the student on ``grid`` (compute bound, memory bound, the larger)."""
    a = GPU_ASSUMPTIONS[gpu]
    k = scale(figures, grid)
    compute = figures["student_forward_flops"] * k / (a["bf16_dense_tflops"] * 1e12 * a["conv3d_efficiency"])
    memory = figures["inference_traffic_bytes_bf16"] * k / (a["memory_tb_s"] * 1e12 * a["memory_efficiency"])
    return {"compute_bound_s": compute, "memory_bound_s": memory, "estimate_s": max(compute, memory)}


def gpu_training_memory_bytes(figures: dict, grid, precision: str = "bf16", checkpointing: bool = False,
                              overhead_bytes: float = 1.5 * 2**30) -> dict:
    """Estimated GPU memory of one joint teacher + student step on ``grid``: saved activations (scaled), weights,
    gradients and Adam state, the atlas/targets/velocity fields the sampler keeps, and ``overhead_bytes`` for the
    CUDA context, cuDNN workspaces and allocator slack (an assumption)."""
    key = precision + ("_checkpointing" if checkpointing else "")
    k = scale(figures, grid)
    activations = figures["distill_saved_bytes"][key] * k
    # Sampler state per image on the grid: image (4 B/voxel) + half-resolution velocity (3 × 4 B / 8 per voxel)
    # + appearance residual (4 B/voxel); three images (atlas + two targets) as in the brain benchmark.
    sampler = 3 * (4 + 1.5 + 4) * voxels(grid)
    total = activations + figures["optimizer_state_bytes"] + sampler + overhead_bytes
    return {"activations": activations, "sampler": sampler, "optimizer": figures["optimizer_state_bytes"],
            "overhead": overhead_bytes, "total": total}
