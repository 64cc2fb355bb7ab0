"""DistillSegKernelLib: the Slicer side of the ``distillseg`` engine that every module of the extension shares,
without Qt.

- ``engine``: where the engine is, and how to start it as a child process (found once, here);
- ``jobProtocol``: what a job the widgets can drive offers (``Job``), its states and progress, and ``waitFor``;
- ``jobRunner``: one engine child process followed through its ``--progress jsonl`` events, with cancel
  (``childProcess``: the process, its output lines and its process tree; ``followedJob``: a job's state from the
  engine's lines and exit code);
- ``engineWorker``: segmentations as requests to one long-lived ``distillseg worker`` shared by the modules and
  effects (the model stays loaded), each a job like an engine job;
- ``jobChain``: several engine commands run one after another and followed as one job;
- ``jobControl``: one job at a time for a module, started, then finished or abandoned;
- ``modelStore``: the user's model bundles under ``~/.oneshotseg/models`` (list, zip import/export, delete);
- ``dependencies``: which Python packages the engine still needs in Slicer, and installing them;
- ``volumeFiles``: volume nodes <-> NRRD/NIfTI files with their exact geometry;
- ``segmentLabels``: segmentation nodes <-> label maps with the model's names, colours and terminology;
- ``sequenceBrowsers``: one segmentation per item of a sequence (video frames, 4-D time points) recorded into a
  segmentation sequence played by the same browser, and a proxy node resolved to the item on screen.

The method modules (OneShotSeg, IncrementalLap) and the Segment Editor effects build on these as siblings; the rules
that cross the process boundary (manifest, hashes, paths, exit codes, event keys, label tables, frame files) are the
engine's contract package, ``distillseg.contract``, the only engine code imported here. Nothing here imports torch
or MONAI: the engine runs in a child process.
"""
