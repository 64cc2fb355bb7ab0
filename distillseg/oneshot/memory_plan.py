"""How much memory the one-shot networks need, so jobs can pick a sliding window or refuse early.

Estimates are activation counts of ``FeatureUNet`` scaled by constants fitted to peak-memory measurements
(``benchmarks/speed_scale.py``): inference keeps roughly ``INFERENCE_FACTOR`` full-resolution feature maps of
``channels[0]`` channels alive, plus the logits and their softmax; training keeps every block's activations for the
backward pass (``TRAINING_FACTOR`` times the sum over levels), of the student and, when the hint runs it, the
teacher.
"""

from __future__ import annotations

from typing import Sequence

from distillseg.contract.errors import OutOfMemoryError
from distillseg.common.memory import human

# Peak live activations during inference, in full-resolution maps of channels[0] channels (concatenations,
# residual branches and the upsampled tensor coexist in the last decoder block).
INFERENCE_FACTOR = 8.0
# Stored activations per block for the backward pass, in maps of the block's width (convolutions, norms,
# activations of two subunits and the residual branch).
TRAINING_FACTOR = 12.0
FIXED_OVERHEAD = 700 * 2**20  # the Python process with torch and MONAI loaded
# fp32 arrays of one value per class and working-grid voxel that segmenting holds whatever the window: the atlas
# prior, its copy in the network input, the windows' blended output and its softmax (+ the logits of a whole-grid
# pass), and about half as much again in temporaries. Fitted (rounded up) to benchmarks/speed_scale.py on a 1 mm
# brain (36 classes, 160x192x224): 4.7 GiB peak with 64³ windows, 7.3 GiB for the whole grid; a budget that only
# counted the windows was overrun threefold.
GRID_ARRAYS_WINDOWED = 4.5
GRID_ARRAYS_WHOLE = 5.5
# Bytes an augmenter training step keeps for the backward pass, per working-grid voxel and per image pair (fp32,
# bf16): counted on the real network with autograd's saved-tensor hooks (``benchmarks/harness/estimates.py``
# ``augmenter_saved_bytes`` at 48x64x64 gives 410 and 276). A lower bound of the step's peak: a job refused for it
# could not have run.
AUGMENTER_SAVED_PER_VOXEL_PAIR = {False: 400, True: 270}


def inference_bytes(channels: Sequence[int], num_classes: int, voxels: int, half_precision: bool,
                    window_voxels: int | None = None) -> int:
    """Peak bytes of segmenting a working grid of ``voxels`` voxels with ``FeatureUNet``: the whole grid in one
    forward pass, or sliding windows of ``window_voxels`` voxels (the process's fixed overhead not included)."""
    element = 2 if half_precision else 4
    window = voxels if window_voxels is None else window_voxels
    features = INFERENCE_FACTOR * channels[0] * window * element
    arrays = GRID_ARRAYS_WHOLE if window_voxels is None else GRID_ARRAYS_WINDOWED
    return int(features + arrays * num_classes * voxels * 4)


def training_bytes(channels: Sequence[int], num_classes: int, voxels: int, half_precision: bool,
                   checkpointing: bool, batch: int = 1, teacher: bool = True) -> int:
    """Peak bytes of one student training step on ``batch`` samples of ``voxels`` voxels, with the teacher's
    forward and backward passes beside it when ``teacher`` (the hint on)."""
    element = 2 if half_precision else 4
    per_level = [c * voxels / 8**level for level, c in enumerate(channels)]
    stored = TRAINING_FACTOR * sum(per_level) * 2  # encoder and decoder blocks
    if checkpointing:
        stored = 2 * sum(per_level) * 2 + TRAINING_FACTOR * per_level[0]  # block inputs + one block recomputed
    networks = (2 if teacher else 1) * stored * element  # the student, and the teacher of the same shape
    outputs = 3 * num_classes * voxels * 4  # logits, softmax, one-hot labels of the loss
    return int(batch * (networks + outputs))


def augmenter_training_bytes(voxels: int, half_precision: bool, pairs: int) -> int:
    """Bytes one augmenter training step keeps for backward; it registers ``pairs`` pairs of whole working grids of
    ``voxels`` voxels (student patches do not shrink it)."""
    return AUGMENTER_SAVED_PER_VOXEL_PAIR[half_precision] * voxels * pairs


def sliding_window(grid_shape: Sequence[int], channels: Sequence[int], num_classes: int, half_precision: bool,
                   budget: int) -> tuple[int, int, int] | None:
    """None when the whole grid fits ``budget`` bytes, else the largest window (multiples of 16, at most the grid)
    that does; ``OutOfMemoryError`` when not even 32³ windows fit."""
    usable = budget - FIXED_OVERHEAD
    voxels = int(grid_shape[0] * grid_shape[1] * grid_shape[2])
    if inference_bytes(channels, num_classes, voxels, half_precision) <= usable:
        return None
    window = [min(s, 256) for s in grid_shape]
    while True:
        size = window[0] * window[1] * window[2]
        if inference_bytes(channels, num_classes, voxels, half_precision, size) <= usable:
            return tuple(max(16, (w // 16) * 16) for w in window)
        largest = max(range(3), key=lambda axis: window[axis])
        if window[largest] <= 32:
            least = FIXED_OVERHEAD + inference_bytes(channels, num_classes, voxels, half_precision, size)
            raise OutOfMemoryError(
                f"Segmenting with this model needs at least {human(least)} ({num_classes} classes on a "
                f"{'x'.join(map(str, grid_shape))} working grid, 32³ sliding windows), more than the {human(budget)} "
                "allowed; allow more memory (--max-memory) or close other programs.")
        window[largest] = max(32, window[largest] // 2 // 16 * 16 or 32)
