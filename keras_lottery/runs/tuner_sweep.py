"""Grid sweeps as a Keras Tuner search: the same command on one machine, or as
a chief and workers on many (Keras Tuner's distributed mode).

``keras-lottery sweep CONFIG --grid ... --tuner`` hands the grid to a Keras
Tuner ``GridSearchOracle`` (one ``Choice`` per grid key, its values as in
``--grid``); each trial is one setting, run in this process as the ordinary
hash-named, resumable run folder that ``--jobs`` would make. What a process
does depends on Keras Tuner's environment variables:

- none set: it runs every trial itself, one after another, then writes the
  family report;
- ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT`` and a
  ``KERASTUNER_TUNER_ID`` containing ``chief``: it serves the oracle (runs no
  trial) until the grid is done, then writes the family report;
- the same with any other ``KERASTUNER_TUNER_ID``: a worker; it asks the chief
  for trials until none are left.

``--out`` (the run folders) and the tuner's project must be on a file system
that every process sees. A worker killed mid-trial loses that trial's current
phase only: started again with the same ``KERASTUNER_TUNER_ID``, the chief
hands it the same trial, whose run folder resumes. The family report is the
``--jobs`` sweep's (:mod:`keras_lottery.runs.families`), built from the run
folders, so it is the same whichever way the trials ran.

Example (shell, three machines sharing /shared):

    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief keras-lottery sweep cs.yaml --out /shared/runs \\
        --grid 'cs.mask_initial_value=[-0.1, 0.0]' --tuner      # on 10.0.0.1
    KERASTUNER_TUNER_ID=worker0 keras-lottery sweep cs.yaml ... --tuner
    KERASTUNER_TUNER_ID=worker1 keras-lottery sweep cs.yaml ... --tuner
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import keras_tuner
from keras_tuner.engine.base_tuner import BaseTuner

from keras_lottery import paths
from keras_lottery._messages import print_msg
from keras_lottery.errors import ConfigError
from keras_lottery.runs import runner
from keras_lottery.runs.sweep import (
    expand,
    finish_sweep,
    override_value,
    start_sweep,
    sweep_dir_for,
)
from keras_lottery.runs.tuning import IdlePause, TrialConfigError, metrics

ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
TUNER_ID = "KERASTUNER_TUNER_ID"


def tuner_role(environ=None) -> str:
    """``"single"``, ``"chief"`` or ``"worker"`` from Keras Tuner's variables
    (a chief's ``KERASTUNER_TUNER_ID`` contains ``chief``, as Keras Tuner
    decides). A partial set is an error naming what is missing.

    >>> tuner_role({"KERASTUNER_ORACLE_IP": "127.0.0.1",
    ...             "KERASTUNER_ORACLE_PORT": "8000",
    ...             "KERASTUNER_TUNER_ID": "worker0"})
    'worker'
    """
    environ = os.environ if environ is None else environ
    names = (ORACLE_IP, ORACLE_PORT, TUNER_ID)
    given = [n for n in names if environ.get(n)]
    if ORACLE_IP not in given:
        return "single"
    missing = [n for n in names if n not in given]
    if missing:
        raise ConfigError(
            f"Keras Tuner's distributed mode needs {', '.join(names)}; "
            f"{', '.join(missing)} not set (unset {ORACLE_IP} to run the whole "
            "grid in this process)."
        )
    return "chief" if "chief" in environ[TUNER_ID] else "worker"


def search_space(grid: dict) -> keras_tuner.HyperParameters:
    """One ``Choice`` per grid key, its values as the override texts
    (``json.dumps`` of each value, as :func:`keras_lottery.runs.sweep.expand`
    writes them): values of any YAML type, the first one the default."""
    hp = keras_tuner.HyperParameters()
    for key, values in grid.items():
        hp.Choice(key, [override_value(v) for v in values])
    return hp


def objective_for(config) -> keras_tuner.Objective:
    """The ticket's validation accuracy, or its test accuracy when the config
    holds out no validation set. A grid runs every setting whatever the
    objective; it only orders ``tuner.get_best_hyperparameters()``."""
    name = "val_accuracy" if config.data.validation_size else "test_accuracy"
    return keras_tuner.Objective(name, direction="max")


class SweepTuner(IdlePause, BaseTuner):
    """Runs each trial's grid setting in its run folder (this process) and
    reports :func:`keras_lottery.runs.tuning.metrics` of the finished run.

    Args:
        settings: the grid's settings (:func:`keras_lottery.runs.sweep.expand`).
        grid: the grid they were expanded from.
        directory, project_name: the Keras Tuner project.
        verbose: passed to the runs.
    """

    def __init__(self, settings, grid, directory, project_name, verbose=1):
        self.settings = {s.overrides: s for s in settings}
        self.keys = list(grid)
        self.verbose = verbose
        oracle = keras_tuner.oracles.GridSearchOracle(
            objective=objective_for(settings[0].config),
            hyperparameters=search_space(grid),
            allow_new_entries=False,
            # A failed setting must not stop the others (as with --jobs); the
            # sweep names it at the end.
            max_consecutive_failed_trials=len(settings) + 1,
        )
        super().__init__(oracle, directory=directory, project_name=project_name)

    def setting_of(self, hp):
        """The grid setting of a trial's hyperparameters."""
        if sorted(hp.values) != sorted(self.keys):
            raise TrialConfigError(
                f"The chief's grid keys {sorted(hp.values)} differ from this "
                f"process's {sorted(self.keys)}: run the same sweep command "
                "(config, --grid, --set) on the chief and every worker."
            )
        overrides = tuple(f"{k}={hp.values[k]}" for k in self.keys)
        if overrides not in self.settings:
            raise TrialConfigError(
                f"The chief's trial {list(overrides)} is not in this process's "
                "grid: run the same sweep command on the chief and every worker."
            )
        return self.settings[overrides]

    def run_trial(self, trial, *args, **kwargs):
        setting = self.setting_of(trial.hyperparameters)
        out = os.path.dirname(setting.run_dir) or "."
        if self.verbose:
            print_msg(
                f"[keras_lottery] tuner {self.tuner_id}: trial {trial.trial_id} "
                f"runs {setting.label} in {setting.run_dir}"
            )
        keras.backend.clear_session()  # as a fresh process would start it
        try:
            directory = runner.run(
                setting.config, out=out, verbose=self.verbose, wait=True
            )
        except Exception as error:
            print_msg(f"[keras_lottery] tuner: {setting.label} FAILED: {error!r}")
            raise
        with open(paths.result(directory)) as handle:
            return metrics(json.load(handle))


def run_tuner_sweep(
    config_path, grid, overrides=(), out="runs", tuner_dir=None, verbose=1
) -> str:
    """Runs ``grid`` as a Keras Tuner search in the role the environment gives
    this process (:func:`tuner_role`); returns the sweep folder. The chief and
    a single process write the family report and raise ``RuntimeError``
    naming unfinished settings, as :func:`keras_lottery.runs.sweep.run_sweep`
    does; a worker returns when no trial is left.

    ``tuner_dir``: where the tuner's project goes (``<tuner_dir>/sweep_<hash>``);
    default ``<sweep folder>/tuner``. A search that ends with failed settings
    is moved to ``<project>.failed``, so that running the sweep again retries
    them (Keras Tuner would reload the search as done).
    """
    role = tuner_role()
    settings = expand(config_path, grid, overrides, out)
    if role == "worker":
        directory = sweep_dir_for(config_path, grid, overrides, out)
    else:
        directory = start_sweep(config_path, grid, overrides, out)
    if all(paths.is_finished(s.run_dir) for s in settings):
        # Nothing to hand out: a chief would wait for workers that never come,
        # a worker for a chief that has already ended.
        if role == "worker":
            return directory
        return finish_sweep(directory, settings, [])
    if tuner_dir is None:
        project = (directory, paths.SWEEP_TUNER)
    else:
        project = (tuner_dir, os.path.basename(directory))
    tuner = SweepTuner(settings, grid, *project, verbose=verbose)
    tuner.search()
    if role == "worker":
        if verbose:
            print_msg(
                f"[keras_lottery] tuner {tuner.tuner_id}: no trials left; the "
                f"chief writes the family report in {directory}"
            )
        return directory
    failed = [s for s in settings if not paths.is_finished(s.run_dir)]
    if failed:
        _set_aside(tuner.project_dir)
    return finish_sweep(directory, settings, failed, logs="the tuner processes' output")


def _set_aside(project_dir: str) -> None:
    """Moves a search that ended with failed settings to ``<project>.failed``
    (replacing an older one): Keras Tuner would reload it as done and hand out
    nothing, so the next run of the sweep starts a new search, in which the
    finished settings cost nothing and the failed ones run again."""
    target = project_dir.rstrip(os.sep) + ".failed"
    shutil.rmtree(target, ignore_errors=True)
    os.replace(project_dir, target)
    print_msg(f"[keras_lottery] the failed search's trial records: {target}")
