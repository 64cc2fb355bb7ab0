"""Stage 3: reconstruction-guided feature distillation (DESIGN §4 step 3).

Teacher: residual U-Net with a 1-channel reconstruction head; it sees the real image and reconstructs it.
Student: U-Net of the same shape with a segmentation head; it sees the synthetic image (and, by default, the fixed
atlas prior of ``atlas_prior``: the extension's addition that makes it learn in hundreds of steps) and learns its
labels.
Loss = seg_weight·DiceCE(student) + hint_weight·Σ(1 - cos) over the last two decoder features
       + recon_weight·L1(teacher reconstruction, real image). Both networks train jointly with one optimizer.
The hint is off by default (hint_weight 0; the paper uses 1): on the brain benchmark it lowered the student's Dice
in both directions (settings direction, seed 0: 0.697 with it, 0.753 without; reporting direction, three paired
seeds: 0.735 vs 0.752), and the teacher reaches the student only through the hint, so without it the teacher is
not run at all. ``--hint-weight 1`` restores the paper's objective.
With ``hint_adapter`` the student's features pass through a learned 1×1×1 convolution per level before the hint
compares them (the FitNets regressor, Romero et al. 2015): the hint then asks that the teacher's features be a
linear map of the student's, instead of asking the student's last decoder features, which its segmentation heads
read, to copy a reconstruction network's. The adapters exist only in training and are not in the bundle.
``DistillationObjective`` holds both networks and the loss so DistributedDataParallel can wrap a whole step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from distillseg.oneshot.losses import hint_loss, reconstruction_loss, segmentation_loss
from distillseg.oneshot.unet import FeatureUNet


@dataclass(frozen=True)
class DistillOptions:
    iterations: int = 500
    lr: float = 2e-3
    warmup: int = 20
    batch_size: int | None = None  # global batch; None: 1, or one per process under torchrun
    seg_weight: float = 1.0
    hint_weight: float = 0.0        # the paper's 1; off by default, see the module docstring
    recon_weight: float = 1.0
    recon: str = "l1"
    hint_trains_teacher: bool = False
    hint_adapter: bool = False  # a learned 1×1×1 convolution between each student feature and the hint
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    student_residual: bool = True
    decoder_subunits: int = 1
    up_kernel: int = 2
    deep_supervision: int = 2  # extra student heads at 1/2, 1/4 … resolution (MONAI DeepSupervisionLoss)
    checkpointing: bool = False  # gradient checkpointing: less memory, ~30 % more time
    atlas_prior: bool = True  # the student also sees the blurred atlas labels and starts from them
    prior_sigma: float = 1.0  # the prior's Gaussian blur, working-grid voxels

    @property
    def runs_teacher(self) -> bool:
        """Whether the teacher runs and trains at all: it reaches the student only through the hint, so without
        the hint reconstructing would cost a second network's passes and change nothing the student learns."""
        return self.hint_weight > 0


def build_networks(options: DistillOptions, num_classes: int) -> tuple[FeatureUNet, FeatureUNet]:
    """(teacher, student): same shape; the teacher is always residual (DESIGN), the student as configured."""
    shape = {"decoder_subunits": options.decoder_subunits, "up_kernel": options.up_kernel}
    teacher = FeatureUNet(1, 1, options.channels, residual=True, **shape)
    student = FeatureUNet(1, num_classes, options.channels, residual=options.student_residual,
                          deep_supervision=options.deep_supervision,
                          prior_channels=num_classes if options.atlas_prior else 0, **shape)
    teacher.checkpointing = student.checkpointing = options.checkpointing
    return teacher, student


class DistillationObjective(nn.Module):
    def __init__(self, teacher: FeatureUNet, student: FeatureUNet, options: DistillOptions):
        super().__init__()
        self.teacher, self.student, self.options = teacher, student, options
        # One adapter per hint level, in the order of ``UNetOutput.features`` (half resolution, then full).
        channels = options.channels
        self.hint_adapter = nn.ModuleList([nn.Conv3d(channels[1], channels[1], kernel_size=1),
                                           nn.Conv3d(channels[0], channels[0], kernel_size=1)]) \
            if options.hint_adapter and options.runs_teacher else None
        self.segmentation = segmentation_loss()
        if options.deep_supervision:
            from monai.losses import DeepSupervisionLoss

            self.segmentation = DeepSupervisionLoss(self.segmentation, weight_mode="exp")

    def training_networks(self) -> dict[str, nn.Module]:
        """What a checkpoint of this stage holds: the networks that train (the student; the teacher and the hint
        adapters when the hint runs them)."""
        networks = {"student": self.student}
        if self.options.runs_teacher:
            networks["teacher"] = self.teacher
        if self.hint_adapter is not None:
            networks["hint_adapter"] = self.hint_adapter
        return networks

    def forward(self, image: torch.Tensor, classes: torch.Tensor, teacher_image: torch.Tensor, autocast,
                prior: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Total loss and its parts: ``image``/``teacher_image`` (B, 1, ...), ``classes`` (B, 1, ...) int64,
        ``prior`` (B, C, ...) the atlas prior under the image when the student takes one."""
        o = self.options
        needs_teacher = o.runs_teacher
        student_input = image if prior is None else torch.cat([image, prior.to(image.dtype)], dim=1)
        with autocast:
            student = self.student(student_input)
            if needs_teacher:
                reconstruction, teacher_features, _ = self.teacher(teacher_image)
            student_features = student.features
            if self.hint_adapter is not None:
                student_features = [adapter(f) for adapter, f in zip(self.hint_adapter, student_features)]
        if student.auxiliary:
            # Nearest-neighbour downsizing of the labels needs a float tensor; DiceCE turns it back into classes.
            seg = self.segmentation([student.output.float(), *(a.float() for a in student.auxiliary)],
                                    classes.float())
        else:
            seg = self.segmentation(student.output.float(), classes)
        total = o.seg_weight * seg
        parts = {"seg": float(seg.detach())}
        if o.hint_weight > 0:
            hint = hint_loss(teacher_features, student_features, train_teacher=o.hint_trains_teacher)
            total = total + o.hint_weight * hint
            parts["hint"] = float(hint.detach())
        if needs_teacher and o.recon_weight > 0:
            recon = reconstruction_loss(reconstruction, teacher_image, o.recon)
            total = total + o.recon_weight * recon
            parts["recon"] = float(recon.detach())
        return total, parts
