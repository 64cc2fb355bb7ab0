"""The on-disk format of model bundles, in plain Python (no torch), so Slicer's GUI process can check a manifest.

``FORMAT_VERSION`` goes up when a bundle written by a newer engine could be misread by an older one; readers refuse
versions newer than their own.
"""

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
METHOD_TITLES = {"oneshot": "OneShotSeg (3D one-shot)", "lap": "IncrementalLap (laparoscopic frames)"}
