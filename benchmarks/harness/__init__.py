"""What the benchmark scripts share, one job per module.

- ``paths``: the repository, the results folder, the shared data folder, and paths as a report shows them;
- ``run``: run a command as a child process and measure it (time, peak memory, the engine's progress events);
- ``report``: what every report says about where and how it ran, its tables, and writing its files;
- ``figures``: the plots (box plots, learning curves, label overlays);
- ``cli``: the options and start-up every entry script shares;
- ``ants``: ANTs label propagation, the one-shot benchmarks' peer (also a worker run as its own process);
- ``estimates``: GPU figures planned on paper from FLOPs and activation bytes counted on the real networks;
- ``oneshot`` / ``oneshot_report``: running and scoring the one-shot methods, and their report tables;
- ``speed_report`` / ``speed_lap``: the speed benchmark's report, and its IncrementalLap part;
- ``lap_protocols`` / ``lap_runs``: the class-incremental protocols and the ``distillseg lap`` steps run on them.
"""
