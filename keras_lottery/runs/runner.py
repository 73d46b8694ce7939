"""Runs a :class:`RunConfig` in a hash-named folder: idempotent and resumable.

The run folder ``<out>/<method>_<hash>/`` (layout in :mod:`keras_lottery.paths`)
gets ``config.yaml`` first, the method's phase folders as they finish, the
report, and ``result.json`` last: its presence means the run is finished.
The method is looked up in :mod:`keras_lottery.methods.registry`; its driver is
built from the config (so bad values fail before any folder is created).

Re-running a finished config does nothing (after checking its data and its
phases' manifests); an interrupted one resumes after the last finished phase
and, with the same seed, ends with the same masks. One process at a time works
in a run folder (:mod:`keras_lottery.runs.locking`); a resume under another
backend or with other data is refused (:mod:`keras_lottery.identity`).
Runs that share phases can start from another run's folder
(:mod:`keras_lottery.runs.sharing`).

Example:

>>> run_dir = run(load_config("configs/lenet_mnist.yaml"), out="runs")
"""

from __future__ import annotations

import os
import shutil

import keras

from keras_lottery import distributed, paths
from keras_lottery._io import (
    atomic_write_json,
    atomic_write_text,
    remove_leftover_temps,
)
from keras_lottery._messages import print_msg
from keras_lottery.config import RunConfig, load_config
from keras_lottery.identity import check_identity, read_identity, write_identity
from keras_lottery.methods import registry
from keras_lottery.recipes import Recipe
from keras_lottery.runs import report
from keras_lottery.runs.locking import run_folder_lock


def run_dir_for(config: RunConfig, out: str) -> str:
    """The run folder of ``config`` under ``out``."""
    return paths.run_dir(out, config.hashname())


def run(
    config: RunConfig,
    out: str = "runs",
    verbose: int = 1,
    prepared=None,
    wait: bool = False,
    strategy=None,
    **driver_options,
) -> str:
    """Runs (or resumes, or skips if finished) ``config``; returns the run folder.

    ``prepared`` optionally gives the ``(recipe, model)`` pair that
    :func:`prepare` returns for this config (Keras Tuner builds it first).
    ``driver_options`` go to the method's driver (IMP: ``extra_rewinds``,
    further rewind points whose dense-round state is saved for
    :func:`keras_lottery.runs.sharing.seed_dense_round`; no effect on results).
    ``wait``: if another process holds the run folder, wait for it instead of
    raising :class:`~keras_lottery.errors.RunFolderError`.
    ``strategy``: a ``tf.distribute`` strategy or its name (see
    :func:`keras_lottery.distributed.make_strategy`): the model is built,
    compiled and trained in its scope. Under a multi-worker strategy every
    worker runs this with the same arguments; the chief writes the run folder
    (and holds its lock), the others resume from it and write their files to
    a temporary folder that is removed at the end (docs/distributed.md).
    """
    if isinstance(strategy, str):
        strategy = distributed.make_strategy(strategy)
    with distributed.scope(strategy):
        directory = _run(config, out, verbose, prepared, wait, driver_options)
        distributed.barrier()  # the workers wait for the chief's last write
    return directory


def _run(config, out, verbose, prepared, wait, driver_options) -> str:
    method = registry.get(config.method)
    unknown = sorted(set(driver_options) - set(method.driver_options))
    if unknown:
        raise ValueError(
            f"Method {config.method!r} takes no option(s) {unknown}; allowed: "
            f"{list(method.driver_options)}."
        )
    directory = run_dir_for(config, out)
    if paths.is_finished(directory):
        return _already_finished(directory, config, verbose)
    recipe, model = prepared if prepared is not None else prepare(config)
    driver = method.driver.from_config(
        config, model, checkpoint_dir=directory, verbose=verbose, **driver_options
    )
    if method.preflight is not None:  # every check before the folder exists
        method.preflight(config, recipe, driver, model)
    if not distributed.is_chief():
        return _run_as_worker(directory, recipe, model, driver)
    with run_folder_lock(directory, wait=wait):
        if paths.is_finished(directory):  # finished while this process waited
            return _already_finished(directory, config, verbose)
        _claim(directory, config, verbose)
        atomic_write_text(paths.config(directory), config.to_yaml())
        _train(recipe, model, driver, verbose)
        report.write_report(directory)
        atomic_write_json(
            paths.result(directory),
            {"config": config.to_dict(), **method.summarize(directory)},
        )
    return directory


def _train(recipe, model, driver, verbose) -> None:
    driver.run(
        model,
        test_data=recipe.test_data,
        **recipe.fit_kwargs(verbose=2 if verbose else 0),
    )


def _run_as_worker(directory, recipe, model, driver) -> str:
    """A non-chief worker of a multi-worker run: trains in step with the chief,
    reading ``directory`` to resume, writing nothing there."""
    temp = distributed.worker_temp_dir(directory)
    try:
        _train(recipe, model, driver, verbose=0)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return directory


def _already_finished(directory: str, config: RunConfig, verbose: int) -> str:
    """A finished run: its data must be the same and its phases intact (the
    backend may differ: nothing is computed)."""
    check_identity(directory, config, backend=False)
    registry.get(config.method).summarize(directory)  # verifies the manifests
    if verbose:
        print_msg(f"[keras_lottery] {directory} is already finished; nothing to do.")
    return directory


def _claim(directory: str, config: RunConfig, verbose: int) -> None:
    """Before (re)starting a run in ``directory`` (lock held): removes the
    ``.tmp-*`` files of an interrupted write, then checks the folder's
    ``identity.json`` against this process, or writes it. A folder that holds
    phases but no identity was started before identities and manifests: its
    old phases are accepted unverified."""
    removed = remove_leftover_temps(directory)
    if removed and verbose:
        print_msg(
            f"[keras_lottery] removed {len(removed)} temporary file(s) of an "
            f"interrupted write in {directory}"
        )
    if read_identity(directory) is not None:
        for change in check_identity(directory, config):
            print_msg(f"[keras_lottery] warning: resuming with {change}")
        return
    legacy = any(
        paths.finished_phases(directory, prefix)
        for prefix in (paths.ROUND, paths.SEARCH)
    )
    write_identity(directory, config, manifests=not legacy)


def prepare(config: RunConfig):
    """The :class:`Recipe` and the compiled model a run of ``config`` trains:
    the registry model, seeded with ``config.seed``, prepared by the method
    (soft-masked for CS)."""
    method = registry.get(config.method)
    recipe = Recipe(config)
    keras.utils.set_random_seed(config.seed)
    model = method.prepare(config, recipe, recipe.build_model())
    return recipe, model


def load_config_of(directory: str) -> RunConfig:
    """The config saved in a run folder (``config.yaml``); a clear error for a
    folder that is not a run folder."""
    path = paths.config(directory)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} is not a run folder (no config.yaml).")
    return load_config(path)
