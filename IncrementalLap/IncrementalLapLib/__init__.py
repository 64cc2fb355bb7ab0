"""IncrementalLapLib: the Slicer side of the IncrementalLap module, without Qt.

- ``frameVolumes``: RGB frame files (PNG/JPEG/TIFF, read with Pillow) <-> one-slice vector volume nodes, and the
  engine's index PNGs back onto a frame's exact grid;
- ``frameSequences``: frames as a Slicer sequence (image sequence / video) with a browser, and segmentations
  recorded per frame into a segmentation sequence;
- ``annotatedFrames``: the frames the user annotated (segmentation + frame pairs, from nodes or sequences) written
  in the engine's DSAD per-structure layout;
- ``frameSegmentation``: frames (current, a selection, every frame of a sequence) through ``lap segment`` and back
  as segmentations / a segmentation sequence, with stable segment IDs;
- ``lapJobs``: the ``distillseg lap`` commands (train, learn, evaluate, segment, restore, demo-data) and a chain of
  engine jobs followed as one;
- ``lapJobControl``: the module's jobs driven from its parameters (one at a time), scores before/after, versions;
- ``sampleFrames``: generated frames, a tiny base model and one learning step, for the self-test (and its checks).

Job runner, job chain, job control, model store, dependency check, engine locator and label glue are the kernel
module's (``DistillSegKernelLib``); frame files are the engine contract's (``distillseg.contract.frames``). Nothing
here imports torch or MONAI: the engine runs in a child process (its ``lap`` verbs).
"""
