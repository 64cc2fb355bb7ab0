"""OneShotSegLib: the Slicer side of the OneShotSeg extension, without Qt.

Shared by every module of the extension (OneShotSeg, its Segment Editor effect, IncrementalLap):

- ``engine``: where the ``distillseg`` engine is and how to start it as a child process;
- ``jobRunner``: one engine job followed through its ``--progress jsonl`` events, with cancel;
- ``modelStore``: the user's model bundles under ``~/.oneshotseg/models`` (list, zip import/export, delete);
- ``dependencies``: which Python packages the engine still needs in Slicer, and installing them;
- ``volumeFiles``: volume nodes <-> NRRD/NIfTI files with their exact geometry;
- ``segmentLabels``: segmentation nodes <-> label maps with the model's names, colours and terminology;
- ``oneshotJobs``: the OneShotSeg train and segment jobs built from the pieces above;
- ``sampleCase``: a tiny synthetic atlas and unlabelled scans for self-tests.

Nothing here imports torch or MONAI: the engine runs in a child process.

Reuse by another module of the extension (e.g. IncrementalLap): declare ``parent.dependencies = ["OneShotSeg"]``
and import from ``OneShotSegLib`` (installed modules share one folder; in developer mode every module folder is on
``sys.path``). What is method-neutral is parameterised rather than copied: ``ModelStore("lap")`` lists that
method's bundles, ``EngineJob`` runs any ``engine.engineCommand([...])``, ``segmentLabels.importLabelmap`` and
``writeLabelFiles`` work on any label map (2D frames as one-slice volumes too), and
``dependencies.ensureDependencies`` checks the one engine requirements file.
"""
