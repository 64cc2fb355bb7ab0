"""The engine's contract with its callers: every rule that crosses the process boundary, defined once.

The Slicer modules run the engine as a child process and talk to it through files and progress lines; what both
sides must agree on lives here and nowhere else, and this package is the only engine code the Slicer side imports:

- ``errors``: the one exception type that reaches the user as a sentence, and the exit codes (2, 3, 130);
- ``events``: the ``--progress jsonl`` event names and keys, writing and parsing one event line;
- ``manifest``: a model bundle's manifest (file name, format version, methods), SHA-256 hashing and verification;
- ``paths``: the user's home folder of models and job folders, and the ``<out>.checkpoint`` rule;
- ``atomic``: how outputs are staged (hidden temporary names) and locked, so either side can sweep what a killed
  writer left;
- ``labels``: the label table (value, name, colour, terminology) as manifests and ``--label-names`` files hold it;
- ``frames``: the frame files the IncrementalLap method exchanges (RGB frames in, index PNGs out);
- ``worker``: the requests ``distillseg worker`` reads on stdin and the ``done`` line that ends each answer.

Plain Python with numpy and Pillow at most (both ship with Slicer): importing it never loads torch or MONAI, which is
tested with those made unimportable.
"""
