"""Grid sweeps: one run folder per setting, side by side, and a family report.

Continuous Sparsification finds one ticket per (s0, lambda) setting, and unlike
IMP the settings do not depend on each other, so a family of tickets of
different sparsities can be searched in parallel ("fast parallel ticket search"
in Savarese et al.). A sweep expands a grid of config overrides, runs every
setting as an ordinary run folder (all share ``seed``, hence the same starting
network) in up to ``jobs`` independent processes, and writes a family report.
It works for IMP configs too (e.g. a grid over ``seed``).

Re-running a sweep skips finished settings and resumes interrupted ones (each
run folder is idempotent and resumable).

The sweep folder ``<out>/sweep_<hash>/`` (:mod:`keras_lottery.paths`) holds
``sweep.yaml`` (base config path, overrides, grid), ``logs/setting_NN.log`` and
the family report (:mod:`keras_lottery.runs.families`).

Example (shell):

    keras-lottery sweep configs/cs_resnet20_cifar10.yaml \\
        --grid 'cs.mask_initial_value=[-0.1, 0.0, 0.1]' --jobs 3 --out runs
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from keras_lottery import paths
from keras_lottery._io import atomic_write_text
from keras_lottery._messages import print_msg
from keras_lottery.config import ConfigError, RunConfig, load_config
from keras_lottery.runs.families import write_sweep_report


@dataclass(frozen=True)
class Setting:
    """One point of the grid: its overrides, config and run folder."""

    overrides: tuple[str, ...]
    config: RunConfig
    run_dir: str

    @property
    def label(self) -> str:
        return ", ".join(self.overrides) or "base"


def parse_grid(items) -> dict[str, list]:
    """``["key=[v1, v2]", ...]`` (values in YAML) -> ``{key: [v1, v2]}``."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Grid entry {item!r} must look like key=[v1, v2, ...].")
        key, raw = item.split("=", 1)
        values = yaml.safe_load(raw)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"Grid entry {item!r}: the values must be a non-empty YAML list, "
                "like cs.mask_initial_value=[-0.1, 0.0, 0.1]."
            )
        if key.strip() in grid:
            raise ConfigError(f"Grid key {key.strip()!r} is given twice.")
        grid[key.strip()] = values
    if not grid:
        raise ConfigError("A sweep needs at least one --grid key=[values].")
    return grid


def expand(config_path, grid: dict, overrides=(), out="runs") -> list[Setting]:
    """Every setting of ``grid`` (Cartesian product, in the given order), each
    validated as a full config before anything runs."""
    keys = list(grid)
    settings = []
    for values in itertools.product(*(grid[k] for k in keys)):
        extra = tuple(
            f"{k}={override_value(v)}" for k, v in zip(keys, values, strict=True)
        )
        config = load_config(config_path, list(overrides) + list(extra))
        settings.append(Setting(extra, config, os.path.join(out, config.hashname())))
    names = [s.run_dir for s in settings]
    if len(set(names)) != len(names):
        raise ConfigError("Two grid settings give the same config; drop duplicates.")
    return settings


def override_value(value) -> str:
    """A grid value as the text of its ``key=value`` override.

    >>> override_value([8, 4])
    '[8, 4]'
    """
    return json.dumps(value)  # JSON scalars and lists are valid YAML


def sweep_dir_for(config_path, grid, overrides, out) -> str:
    base = load_config(config_path, list(overrides))
    canonical = json.dumps(
        {"base": base.hashed_fields(), "grid": grid}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
    return paths.run_dir(out, f"sweep_{digest}")


def run_sweep(config_path, grid, overrides=(), out="runs", jobs=1, verbose=1) -> str:
    """Runs every setting of ``grid`` (``jobs`` at a time, each in its own
    process) and writes the family report; returns the sweep folder.

    Raises ``RuntimeError`` naming the settings that failed (their logs are in
    the sweep folder); the finished ones are kept and the report covers them.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1; got {jobs!r}.")
    settings = expand(config_path, grid, overrides, out)
    directory = start_sweep(config_path, grid, overrides, out)

    def launch(indexed):
        i, setting = indexed
        return _run_setting(
            config_path, overrides, setting, directory, i, jobs, verbose
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(launch, enumerate(settings)))
    failed = [s for s, code in zip(settings, codes, strict=True) if code]
    return finish_sweep(directory, settings, failed)


def start_sweep(config_path, grid, overrides=(), out="runs") -> str:
    """Creates the sweep folder (``sweep.yaml``, ``logs/``); returns it."""
    directory = sweep_dir_for(config_path, grid, overrides, out)
    os.makedirs(paths.sweep_logs(directory), exist_ok=True)
    atomic_write_text(
        paths.sweep_config(directory),
        yaml.safe_dump(
            {
                "config": os.fspath(config_path),
                "overrides": list(overrides),
                "grid": grid,
            },
            sort_keys=False,
        ),
    )
    return directory


def finish_sweep(directory: str, settings, failed, logs=None) -> str:
    """Writes the family report of ``settings``; returns ``directory``, or
    raises ``RuntimeError`` naming the ``failed`` settings and where their
    ``logs`` are (default: the sweep's ``logs/``); the report covers the
    finished ones."""
    write_sweep_report(directory, settings)
    if failed:
        labels = [s.label for s in failed]
        raise RuntimeError(
            f"{len(labels)} sweep setting(s) failed: {labels}; see "
            f"{logs or paths.sweep_logs(directory)}. Re-run the sweep to resume them."
        )
    return directory


def _run_setting(config_path, overrides, setting, directory, index, jobs, verbose):
    if paths.is_finished(setting.run_dir):
        if verbose:
            print_msg(f"[keras_lottery] sweep: {setting.label} already finished")
        return 0
    command = [sys.executable, "-m", "keras_lottery.cli", "run", os.fspath(config_path)]
    for override in list(overrides) + list(setting.overrides):
        command += ["--set", override]
    command += ["--out", os.path.dirname(setting.run_dir) or "."]
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(name, threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    log = paths.sweep_log(directory, index)
    if verbose:
        print_msg(f"[keras_lottery] sweep: running {setting.label} (log: {log})")
    with open(log, "ab") as handle:
        code = subprocess.call(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    if verbose:
        status = "finished" if code == 0 else f"FAILED (exit {code})"
        print_msg(f"[keras_lottery] sweep: {setting.label} {status}")
    return code
