"""distillseg: the engine behind the OneShotSeg 3D Slicer extension.

Two few-label segmentation methods share one engine:

- ``distillseg.oneshot``: one labelled 3D scan + a few unlabelled scans -> a student network (reconstruction-guided
  feature distillation with registration-based augmentation).
- ``distillseg.lap``: class-incremental segmentation of laparoscopic RGB frames with diffusion replay.

The engine never imports Slicer, VTK or Qt; Slicer runs it as a child process through ``python -m distillseg``.
"""

__version__ = "0.1.0"
