"""Run folders: hash-named, resumable runs of typed configs, their branches,
sweeps, reports and comparisons. Only ``runs/`` and ``cli.py`` import ``runs/``."""
