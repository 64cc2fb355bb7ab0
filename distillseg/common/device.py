"""Device choice (``auto | cpu | cuda[:N] | mps``) and mixed precision that works the same on every device.

``auto`` takes CUDA when present, then MPS only if a small convolution gives the same answer as the CPU (MPS
kernels for 3D convolutions are incomplete on some macOS versions), else the CPU. Every job reports the device it
really used through ``describe_device``.
"""

from __future__ import annotations

import contextlib
import os
import sys

import torch

from distillseg.contract.errors import UserError


def _mps_works() -> bool:
    """True if MPS exists and a tiny 3D convolution on it matches the CPU result."""
    if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return False
    try:
        x = torch.randn(1, 1, 6, 6, 6)
        w = torch.randn(2, 1, 3, 3, 3)
        cpu = torch.nn.functional.conv3d(x, w)
        mps = torch.nn.functional.conv3d(x.to("mps"), w.to("mps")).cpu()
        return bool(torch.allclose(cpu, mps, atol=1e-3))
    except Exception:  # any failure means "do not use it"
        return False


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device`` that exists on this machine.

    Raises ``UserError`` when the user asks for a device that is not there (e.g. ``cuda`` on a CPU-only machine).
    """
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if _mps_works():
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
        if not _mps_works():
            raise UserError("Device 'mps' was requested but Apple MPS is not available or fails its self-check.")
        return torch.device("mps")
    raise UserError(f"Unknown device '{spec}'; use auto, cpu, cuda, cuda:N or mps.")


def describe_device(device: torch.device) -> str:
    """Human-readable name of the device, e.g. ``cuda:0 (NVIDIA H100, 80 GB)`` or ``cpu (2 threads)``."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{device} ({props.name}, {props.total_memory / 2**30:.0f} GB)"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
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


def run_tiny_in_fp32(module: torch.nn.Module, x: torch.Tensor, min_size: int = 5) -> torch.Tensor:
    """``module(x)``, but in fp32 with autocast off when a spatial side of ``x`` is below ``min_size`` (a strided
    block turns a 4-voxel input into the 2-voxel one that triggers the bug below).

    oneDNN's bf16 weight gradient of a 3x3x3 convolution on a 2-voxel-wide input is non-deterministic and can be
    non-finite (seen with torch 2.13 on AVX512-BF16 CPUs); such deep, tiny layers cost nothing in fp32.
    """
    if x.dim() > 2 and min(x.shape[2:]) < min_size and torch.is_autocast_enabled(x.device.type):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return module(x.float())
    return module(x)
