"""Branches: analyses run later against an IMP run folder's saved rounds, without
redoing the trunk (open_lth's ``lottery_branch``).

Every branch starts from what round ``N`` saved (``round_NNN/ticket.npz``: the
masks and the full state at the rewind step ``k``; round 0 is the dense
network) and trains with the run's own recipe (``config.yaml``) from step ``k``:

- :func:`run_instability`: pairs of copies of the round's subnetwork that differ
  only in data order; curves and barriers in ``instability/round_NNN/``
  (``instability.json``, ``instability.png``; trained copies and finished pairs
  are kept, so an interrupted analysis resumes without retraining them);
- :func:`run_branch` with a control ``kind``: ``random_reinit`` (same masks,
  fresh initialization), ``random_prune`` (rewound weights, random masks with
  each layer's count of survivors kept) or ``shuffle_masks`` (rewound weights,
  each layer's mask randomly permuted within the layer; any control registered
  in :mod:`keras_lottery.controls`); results in
  ``branches/round_NNN/<kind>/seed_S/record.json``.

``keras-lottery report RUN_DIR`` shows both next to the IMP rounds.

Example:

>>> summary = run_instability("runs/imp_3f2a9c1d0b7e", round=3, pairs=2)
>>> record = run_branch("runs/imp_3f2a9c1d0b7e", round=3, kind="shuffle_masks")
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

import keras

from keras_lottery import analysis, controls, distributed, paths, pruning
from keras_lottery._io import atomic_write_bytes, load_arrays, remove_leftover_temps
from keras_lottery._messages import print_msg
from keras_lottery.config import RunConfig, load_config
from keras_lottery.errors import ConfigError
from keras_lottery.manifest import (
    finish_phase,
    record_bytes,
    verify_phase,
    write_manifest,
)
from keras_lottery.methods.checkpoints import manifests_required, verified_phases
from keras_lottery.recipes import Recipe
from keras_lottery.runs import plots
from keras_lottery.runs.locking import run_folder_lock
from keras_lottery.ticket import Ticket
from keras_lottery.training import assign_all, train_from_step


@dataclass
class SavedRound:
    """What a finished round of a run folder provides to start a branch from."""

    run_dir: str
    round: int
    config: RunConfig
    ticket: Ticket
    record: dict

    @property
    def start_step(self) -> int:
        """The rewind step ``k`` (iterations) the round's ticket starts at."""
        return int(self.ticket.metadata.get("rewind_iterations", 0) or 0)

    def recipe(self) -> Recipe:
        return Recipe(self.config)


def load_round(run_dir: str, round: int, overrides: Iterable[str] = ()) -> SavedRound:
    """Reads round ``round`` of ``run_dir``. ``overrides`` may only set
    ``stability.*`` fields: the recipe is the run's own."""
    overrides = list(overrides)
    bad = [o for o in overrides if not o.strip().startswith("stability.")]
    if bad:
        raise ValueError(
            f"Only stability.* settings can be overridden for an existing run "
            f"(its recipe is its config.yaml); got {bad}."
        )
    path = paths.config(run_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml).")
    config = load_config(path, overrides)
    if isinstance(round, bool) or not isinstance(round, int) or round < 0:
        raise ValueError(f"round must be an int >= 0; got {round!r}.")
    record_path = paths.round_record(run_dir, round)
    if not os.path.exists(record_path):
        finished = paths.finished_phases(run_dir, paths.ROUND)
        raise ValueError(
            f"Round {round} of {run_dir} is not finished (no {record_path}); "
            f"finished rounds: {finished or 'none'}."
        )
    verified_phases(run_dir, paths.ROUND)  # this round and those before it
    with open(record_path) as handle:
        record = json.load(handle)
    ticket = Ticket.load(paths.round_ticket(run_dir, round))
    return SavedRound(run_dir, round, config, ticket, record)


# ----------------------------------------------------------------- instability


def run_instability(
    run_dir: str,
    round: int,
    overrides: Iterable[str] = (),
    verbose: int = 1,
    wait: bool = False,
    **settings,
) -> dict:
    """Instability of round ``round``'s subnetwork at its rewind step (round 0:
    the dense network), with the run's recipe; resumable.

    ``settings`` (``pairs``, ``points``, ``threshold``, ...) and ``overrides``
    (``"stability.points=11"``) replace the config's ``stability`` section.
    Writes ``instability/round_NNN/{instability.json, instability.png}`` and
    keeps each trained copy and finished pair under ``.../copies/``. Returns
    the saved summary. ``wait``: wait for another process working in the run
    folder instead of raising :class:`~keras_lottery.errors.RunFolderError`.
    """
    with run_folder_lock(run_dir, wait=wait):
        remove_leftover_temps(run_dir)
        return _run_instability(run_dir, round, overrides, verbose, settings)


def _run_instability(run_dir, round, overrides, verbose, settings) -> dict:
    saved = load_round(run_dir, round, overrides)
    recipe = saved.recipe()
    if verbose:
        print_msg(
            f"[keras_lottery] instability of round {round} "
            f"({100 * saved.record['fraction_remaining']:.2f}% weights remaining) "
            f"from step {saved.start_step} of {run_dir}"
        )
    result = analysis.instability(
        saved.ticket,
        recipe,
        start_step=saved.start_step,
        settings=analysis.settings_with(saved.config.stability, settings),
        cache_dir=paths.instability_copies(run_dir, round),
        verbose=verbose,
    )
    summary = {
        "run_dir": os.path.abspath(run_dir),
        "round": round,
        "fraction_remaining": saved.record["fraction_remaining"],
        "rewind": saved.ticket.metadata.get("rewind"),
        **result.to_dict(),
    }
    # The manifest first: instability.json marks the analysis finished.
    data = record_bytes(summary)
    write_manifest(paths.instability_dir(run_dir, round), [], {INSTABILITY_JSON: data})
    atomic_write_bytes(paths.instability_json(run_dir, round), data)
    plots.plot_instability(
        summary,
        paths.instability_plot(run_dir, round),
        title=f"round {round}, {100 * saved.record['fraction_remaining']:.1f}% "
        f"weights, k = {summary['rewind']}",
    )
    return summary


# -------------------------------------------------------------------- controls


def run_branch(
    run_dir: str,
    round: int,
    kind: str,
    seed: int = 0,
    verbose: int = 1,
    wait: bool = False,
    strategy=None,
) -> dict:
    """Trains control ``kind`` from round ``round`` (>= 1) of ``run_dir`` from
    the round's rewind step with the run's recipe, as IMP trains its controls.
    Skips (and returns the saved record) if already done. ``wait``: wait for
    another process working in the run folder instead of raising
    :class:`~keras_lottery.errors.RunFolderError`. ``strategy``: a
    ``tf.distribute`` strategy or its name, as for
    :func:`keras_lottery.runs.runner.run` (under a multi-worker strategy only
    the chief locks and writes the run folder)."""
    controls.get(kind)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    if not os.path.exists(paths.config(run_dir)):
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml).")
    if isinstance(strategy, str):
        strategy = distributed.make_strategy(strategy)
    with distributed.scope(strategy):
        if not distributed.is_chief():
            result = _run_branch(run_dir, round, kind, seed, verbose, write=False)
        else:
            with run_folder_lock(run_dir, wait=wait):
                remove_leftover_temps(run_dir)
                result = _run_branch(run_dir, round, kind, seed, verbose)
        distributed.barrier()  # the workers wait for the chief's record
    return result


def _run_branch(run_dir, round, kind, seed, verbose, write=True) -> dict:
    directory = paths.branch_dir(run_dir, round, kind, seed)
    path = paths.record(directory)
    if os.path.exists(path):
        verify_branch(run_dir, directory)
        if verbose:
            print_msg(f"[keras_lottery] {path} exists; nothing to do.")
        with open(path) as handle:
            return json.load(handle)
    saved = load_round(run_dir, round)
    if round == 0:
        raise ValueError(
            "Round 0 is the dense network: controls need a pruned round (>= 1)."
        )
    recipe = saved.recipe()
    random_seed = controls.branch_seed(saved.config.seed, round, kind, seed)
    model = controls.control_model(kind, saved.ticket, recipe.build_model, random_seed)
    recipe.compile(model)
    plan = recipe.retrain_plan()  # the run's own retrain tweaks, as IMP's
    keras.utils.set_random_seed(random_seed)
    if verbose:
        print_msg(
            f"[keras_lottery] training branch {kind} (seed {seed}) of round {round}"
        )
    record, _ = retrain_from_round(
        model, saved, recipe, plan, f"branch {kind} (seed {seed}) of round {round}"
    )
    report = pruning.sparsity_report(model)
    result = {
        "kind": kind,
        "seed": seed,
        "round": round,
        "rewind": saved.ticket.metadata.get("rewind"),
        "start_step": saved.start_step,
        "fraction_remaining": report.fraction_remaining,
        "layers_remaining": report.layers_remaining,
        "training": dataclasses.asdict(record),
    }
    if write:
        finish_phase(directory, [], result)
    if verbose:
        print_msg(
            f"[keras_lottery] branch {kind} (seed {seed}) of round {round}: "
            f"{record.summary()}"
        )
    return result


def retrain_from_round(model, saved: SavedRound, recipe, plan, phase: str, verbose=0):
    """Trains ``model`` (compiled by ``recipe``, holding the round's ticket or
    a control of it) from the round's rewind step to the end with the
    retrain ``plan``'s tweaks (the teacher of KD: the run's trained round 0);
    the trained values end in ``model``. Returns the ``TrainingRecord`` and
    the trained network as it was trained (``model`` itself, or its
    transformed copy: soft activation, extra skip paths)."""
    prepared = plan.prepare(
        model,
        model.get_compile_config(),
        teacher=lambda: load_teacher(saved.run_dir, recipe),
    )
    record = train_from_step(
        prepared.trainee,
        saved.start_step,
        compile_config=prepared.compile_config,
        test_data=recipe.test_data,
        keep_best=saved.config.pruning.evaluate_at == "best",
        phase=phase,
        callbacks=prepared.callbacks,
        **recipe.fit_kwargs(verbose=2 if verbose > 1 else 0),
    )
    plan.finish(prepared, model)
    return record, prepared.student


def load_teacher(run_dir: str, recipe):
    """The trained dense network of an IMP run folder (round 0's
    ``trained.npz``, verified against its manifest) in the recipe's model."""
    path = paths.round_trained(run_dir, 0)
    if not os.path.exists(paths.round_record(run_dir, 0)):
        raise ConfigError(
            f"'retrain.tweaks' kd needs the trained dense network of {run_dir}: "
            f"it has no finished round 0 ({path})."
        )
    verify_phase(
        paths.round_dir(run_dir, 0),
        "delete the run folder's rounds and re-run it",
        manifests_required(run_dir),
    )
    teacher = recipe.build_model()
    assign_all(teacher, load_arrays(path, "round 0's trained.npz"))
    return teacher


INSTABILITY_JSON = "instability.json"


def verify_branch(run_dir: str, directory: str) -> None:
    """Checks a branch's folder (``branches/round_NNN/<kind>/seed_S``) or an
    instability analysis's (``instability/round_NNN``) of ``run_dir`` against
    its manifest."""
    verify_phase(
        directory,
        f"delete {directory} and run that branch again",
        manifests_required(run_dir),
    )
