"""OneShotSegLib: the Slicer side of the OneShotSeg method, without Qt.

- ``oneshotJobs``: the training job (nodes written to files, the ``distillseg oneshot train`` command, the model
  brought back, resumable);
- ``scanSegmentation``: segmenting with a model: one scan, the checked scans, every time point of a 4-D scan (into
  a segmentation sequence) or a folder of scans, each in one engine request;
- ``jobControl``: the module's jobs driven from its parameters, one at a time;
- ``sampleCase``: a tiny synthetic atlas and unlabelled scans, and the whole story on them, for self-tests.

What every module shares (job runner, model store, dependency check, engine locator, volume and label glue) is the
kernel's, ``DistillSegKernelLib``. Nothing here imports torch or MONAI: the engine runs in a child process.
"""
