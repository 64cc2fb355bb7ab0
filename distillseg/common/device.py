"""Device choice (``auto | cpu | cuda[:N] | mps``) and mixed precision that works the same on every device.

``auto`` takes CUDA when present, then Apple's MPS only if the operations the models run give the CPU's results
there (MPS kernels for 3D work are incomplete on some macOS versions), else the CPU. When MPS is present but fails
that check, the job runs on the CPU and the device it reports says why, in one sentence. Every job reports the
device it really used through ``describe_device``.

``python -m distillseg.common.device`` prints one ``--progress jsonl`` result event listing the devices this machine
can use (what Slicer offers in its device lists), without running a job.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable

import torch

from distillseg.contract import events
from distillseg.contract.errors import UserError

PROBE_TOLERANCE = 1e-3  # fp32: the same operation on two devices differs by rounding only


def _probes() -> list[tuple[str, Callable[..., torch.Tensor], list[torch.Tensor]]]:
    """``(name, operation, inputs)`` of what the networks run on 3D data, in fp32, on small seeded inputs."""
    generator = torch.Generator().manual_seed(0)

    def random(*shape):
        return torch.randn(*shape, generator=generator)

    functional = torch.nn.functional

    def gridSampleBackward(volume, grid):
        volume, grid = volume.clone().requires_grad_(), grid.clone().requires_grad_()
        out = functional.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)
        gradients = torch.autograd.grad((out * out).sum(), (volume, grid))
        return torch.cat([g.flatten() for g in gradients])

    grid = torch.rand(1, 5, 6, 7, 3, generator=generator) * 2 - 1
    return [
        ("16->16 3D convolution", lambda x, w: functional.conv3d(x, w, padding=1), [random(1, 16, 8, 8, 8),
                                                                                    random(16, 16, 3, 3, 3)]),
        ("stride-2 3D transposed convolution",
         lambda x, w: functional.conv_transpose3d(x, w, stride=2, padding=1, output_padding=1),
         [random(1, 16, 4, 4, 4), random(16, 16, 3, 3, 3)]),
        ("3D grid_sample", lambda v, g: functional.grid_sample(v, g, mode="bilinear", padding_mode="border",
                                                               align_corners=True), [random(1, 3, 6, 7, 8), grid]),
        ("3D grid_sample backward", gridSampleBackward, [random(1, 3, 6, 7, 8), grid]),
    ]


def check_against_cpu(device: torch.device) -> str | None:
    """What goes wrong on ``device`` (a clause naming the first model operation whose result fails or differs from
    the CPU's), or None when all of them match."""
    for name, operation, inputs in _probes():
        expected = operation(*inputs)
        try:
            result = operation(*[tensor.to(device) for tensor in inputs]).cpu()
        except Exception as error:  # an operation MPS does not implement, or a driver failure
            return f"{device} cannot run the {name} the models use ({error.__class__.__name__})"
        if result.shape != expected.shape or not torch.allclose(result, expected, rtol=PROBE_TOLERANCE,
                                                                atol=PROBE_TOLERANCE):
            return f"{device} computes the {name} the models use differently from the CPU"
    return None


def _mps_present() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


@functools.lru_cache(maxsize=1)
def mps_problem() -> str | None:
    """Why MPS is not used here (a clause), or None when it is present and passes ``check_against_cpu``."""
    if not _mps_present():
        return "Apple MPS is not available on this machine"
    return check_against_cpu(torch.device("mps"))


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device`` that exists on this machine.

    Raises ``UserError`` when the user asks for a device that is not there (e.g. ``cuda`` on a CPU-only machine).
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if mps_problem() is None:
            return torch.device("mps")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "gpu":
        spec = "cuda"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"Device '{spec}' was requested but this machine has no usable CUDA GPU; use --device cpu.")
        device = torch.device(spec)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserError(
                f"Device '{spec}' was requested but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        return device
    if spec == "mps":
        if mps_problem() is not None:
            raise UserError(f"Device 'mps' was requested, but {mps_problem()}; use --device cpu.")
        return torch.device("mps")
    raise UserError(f"Unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps.")


def describe_device(device: torch.device) -> str:
    """Human-readable name of the device, e.g. ``cuda:0 (NVIDIA H100, 80 GB)`` or ``cpu (2 threads)``; on a Mac
    whose MPS fails its check, the CPU's says why it is not MPS."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GB)"
    if device.type == "cpu":
        fallback = f"; {mps_problem()}, so the CPU is used" if _mps_present() and mps_problem() else ""
        return f"cpu ({torch.get_num_threads()} threads{fallback})"
    return str(device)


def amp_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a device, or None for full fp32.

    ``precision``: ``auto`` (bf16 on CUDA GPUs that support it, fp16 on older CUDA GPUs; bf16 on CPUs with native
    bf16 instructions (AVX512-BF16/AMX), where it halves the time of 3D convolutions; fp32 elsewhere), ``fp32``,
    ``bf16`` or ``fp16`` (CUDA only).
    """
    precision = precision.lower()
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise UserError("--precision fp16 needs a CUDA device; use bf16 or fp32 on this device.")
        return torch.float16
    if precision != "auto":
        raise UserError(f"Unknown precision '{precision}'; use auto, fp32, bf16 or fp16.")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return None


def _cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 natively here (emulated bf16 would be slower than fp32)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op context when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A gradient scaler that is active only for fp16 (bf16 and fp32 need none)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def set_threads(threads: int | None) -> None:
    """Limit CPU threads (0 or None: leave torch's default). Jobs sharing cores with Slicer's GUI pass a limit."""
    if threads:
        torch.set_num_threads(int(threads))


def peak_memory_bytes(device: torch.device) -> int:
    """Peak memory of this process on ``device``: CUDA allocator peak, or the process's peak resident set on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        import resource
    except ImportError:  # Windows has no resource module; report nothing rather than a wrong figure
        return 0
    # ru_maxrss is in kilobytes on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def usable_devices() -> list[str]:
    """What ``--device`` can name on this machine, as Slicer's device lists offer it: auto, cpu, cuda if present,
    mps if it passes its check."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if mps_problem() is None
                                                                                 else [])


def main() -> int:
    """Print the usable devices (and why MPS is not one, if it is not) as one jsonl ``result`` event."""
    print(events.event_line(events.RESULT, devices=usable_devices(), mps_problem=mps_problem()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
