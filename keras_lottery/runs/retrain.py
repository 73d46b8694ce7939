"""Retraining a saved round's ticket with sparse-retraining tweaks, as a branch
of an IMP run folder (``keras-lottery retrain``).

The round's ticket (masks and the weights at the rewind step ``k``) trains
again from ``k`` with the run's own recipe plus the tweaks (soft activations,
extra skips, label smoothing, KD with round 0 as teacher, LRsI on the ticket's
weights before masking; docs/tweaks.md). Like
:func:`keras_lottery.runs.branches.run_branch` it is resumable (a finished
folder is not trained again), locked and verified against its manifest. The
folder is named by the hash of the ``retrain`` settings::

    <run>/retrain/round_NNN/retrain_<hash>/seed_S/{record.json, trained.npz,
                                                   transformed.npz}

(``trained.npz``: the ticket's network; ``transformed.npz``: with a soft
activation or extra skips, the network as trained, in the order of
``RetrainPlan(settings).transform(model).weights``, see :func:`load_transformed`)

and ``keras-lottery report`` shows each as a column ``retrain:<tweaks>``.

Example:

>>> record = run_retrain("runs/imp_3f2a9c1d0b7e", 3, ["swish", "kd"])
>>> record["training"]["test"]["accuracy"]
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import keras

from keras_lottery import paths, pruning
from keras_lottery._io import (
    load_arrays,
    read_json,
    remove_leftover_temps,
    save_arrays,
)
from keras_lottery._messages import print_msg
from keras_lottery.config import RetrainConfig, apply_overrides, from_dict
from keras_lottery.errors import ConfigError, RunFolderError
from keras_lottery.manifest import finish_phase
from keras_lottery.rewind import capture_state
from keras_lottery.runs.branches import (
    load_round,
    retrain_from_round,
    verify_branch,
)
from keras_lottery.runs.locking import run_folder_lock
from keras_lottery.training import assign_all
from keras_lottery.tweaks.retraining import RetrainPlan, label, settings_name


def retrain_settings(
    run_config, tweaks: Iterable[str], overrides: Iterable[str] = ()
) -> RetrainConfig:
    """The run's ``retrain`` section with ``tweaks`` and ``retrain.KEY=V``
    ``overrides`` (other keys are refused: the recipe is the run's own)."""
    overrides = list(overrides)
    bad = [o for o in overrides if not o.strip().startswith("retrain.")]
    if bad:
        raise ConfigError(
            "keras-lottery retrain takes only retrain.* settings (the recipe is "
            f"the run's config.yaml); got {bad}."
        )
    data = {"retrain": dataclasses.asdict(run_config.retrain)}
    data["retrain"]["tweaks"] = list(tweaks)
    data = apply_overrides(data, overrides)
    return from_dict(data["retrain"], RetrainConfig, "retrain.")


def run_retrain(
    run_dir: str,
    round: int,
    tweaks: Iterable[str],
    overrides: Iterable[str] = (),
    seed: int = 0,
    verbose: int = 1,
    wait: bool = False,
) -> dict:
    """Retrains round ``round`` (>= 1) of the IMP run ``run_dir`` with
    ``tweaks`` (names of :mod:`keras_lottery.tweaks.registry`) and
    ``retrain.*`` ``overrides``; returns the record (the saved one if this
    retraining is finished). Misfits (KD without a dense round, extra skips
    without basic blocks) raise :class:`ConfigError` before anything is
    written. ``wait``: wait for another process working in the run folder."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0; got {seed!r}.")
    if not os.path.exists(paths.config(run_dir)):
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.yaml).")
    with run_folder_lock(run_dir, wait=wait):
        remove_leftover_temps(run_dir)
        return _run_retrain(run_dir, round, list(tweaks), overrides, seed, verbose)


def _run_retrain(run_dir, round, tweaks, overrides, seed, verbose) -> dict:
    saved = load_round(run_dir, round)
    if saved.config.method != "imp":
        raise ConfigError(
            f"keras-lottery retrain needs an IMP run folder; {run_dir} is "
            f"method {saved.config.method!r}."
        )
    if round == 0:
        raise ValueError("Round 0 is the dense network: retrain a pruned round (>= 1).")
    settings = retrain_settings(saved.config, tweaks, overrides)
    directory = paths.retrain_dir(run_dir, round, settings_name(settings), seed)
    if os.path.exists(paths.record(directory)):
        verify_branch(run_dir, directory)
        if verbose:
            print_msg(
                f"[keras_lottery] {paths.record(directory)} exists; nothing to do."
            )
        return read_json(paths.record(directory), "a retrain record.json")
    plan = RetrainPlan(settings)
    recipe = saved.recipe()
    random_seed = retrain_seed(saved.config.seed, round, seed)
    keras.utils.set_random_seed(random_seed)
    model = recipe.build_model()
    plan.check(model, has_teacher=os.path.exists(paths.round_record(run_dir, 0)))
    if plan.rescales_init and saved.ticket.metadata.get("rewind_mode") not in (
        None,
        "weights",
    ):
        raise ConfigError(
            "'retrain.tweaks' lrsi rescales the weights a ticket rewinds to; "
            f"round {round} of {run_dir} was trained with learning-rate rewinding."
        )
    plan.apply_ticket(
        model, saved.ticket, (recipe.splits.x_train, recipe.splits.y_train)
    )
    recipe.compile(model)
    keras.utils.set_random_seed(random_seed)
    if verbose:
        print_msg(
            f"[keras_lottery] retraining round {round} with {label(settings)} "
            f"(seed {seed})"
        )
    phase = f"retrain {label(settings)} (seed {seed}) of round {round}"
    record, trained = retrain_from_round(model, saved, recipe, plan, phase, verbose)
    report = pruning.sparsity_report(model)
    result = {
        "kind": "retrain",
        "label": label(settings),
        "settings": dataclasses.asdict(settings),
        "seed": seed,
        "round": round,
        "rewind": saved.ticket.metadata.get("rewind"),
        "start_step": saved.start_step,
        "fraction_remaining": report.fraction_remaining,
        "training": dataclasses.asdict(record),
    }
    os.makedirs(directory, exist_ok=True)
    files = [paths.trained(directory)]
    save_arrays(paths.trained(directory), capture_state(model))
    if trained is not model:  # the transformed network, skip paths included
        files.append(paths.transformed(directory))
        save_arrays(files[-1], capture_state(trained))
    finish_phase(directory, [os.path.basename(f) for f in files], result)
    if verbose:
        print_msg(f"[keras_lottery] {phase}: {record.summary()}")
    return result


def load_transformed(run_dir: str, round: int, tweaks, overrides=(), seed=0):
    """The network a finished retraining trained (its transformed model, extra
    skip paths included) with its trained values; ``tweaks``, ``overrides``
    and ``seed`` as given to :func:`run_retrain`.

    >>> model = load_transformed("runs/imp_3f2a9c1d0b7e", 3, ["swish"])
    """
    saved = load_round(run_dir, round)
    settings = retrain_settings(saved.config, tweaks, overrides)
    directory = paths.retrain_dir(run_dir, round, settings_name(settings), seed)
    if not os.path.exists(paths.record(directory)):
        raise FileNotFoundError(f"{directory} holds no finished retraining.")
    return load_retrained(directory)[0]


def load_retrained(directory: str) -> tuple[keras.Model, dict]:
    """``(network, record)`` of the finished retraining folder ``directory``
    (``<run>/retrain/round_NNN/retrain_<hash>/seed_S``): the transformed
    network with its trained values, rebuilt from the settings its record
    holds. Raises :class:`~keras_lottery.errors.RunFolderError` for another
    folder, an unfinished one, or a record whose settings do not name it.

    >>> folder = "runs/imp_3f/retrain/round_003/retrain_0a1b2c3d4e5f/seed_0"
    >>> model, record = load_retrained(folder)
    """
    parts = paths.retrain_parts(directory)
    if parts is None:
        raise RunFolderError(
            f"{directory} is not a retraining folder "
            "(<run>/retrain/round_NNN/retrain_<hash>/seed_S)."
        )
    run_dir, round, name, _ = parts
    if not os.path.exists(paths.record(directory)):
        raise RunFolderError(f"{directory} holds no finished retraining.")
    verify_branch(run_dir, directory)
    record = read_json(
        paths.record(directory), "a retrain record.json", ("round", "settings")
    )
    settings = from_dict(record["settings"], RetrainConfig, "retrain.")
    if settings_name(settings) != name or record["round"] != round:
        raise RunFolderError(
            f"{paths.record(directory)} records the settings of "
            f"{settings_name(settings)} (round {record['round']}), not of its "
            "folder: it was moved or edited."
        )
    saved = load_round(run_dir, round)
    model = saved.recipe().build_model()
    pruning.set_masks(model, saved.ticket.masks)
    return trained_network(model, settings, directory), record


def phase_settings(config, round: int | None = None) -> RetrainConfig:
    """The ``retrain`` settings a run's phase trained with: the config's, except
    for IMP's dense round 0 (``round=0``), which trains without tweaks."""
    return RetrainConfig() if round == 0 else config.retrain


def trained_network(model, settings: RetrainConfig, directory: str) -> keras.Model:
    """The network a phase folder's ticket trained as, with its trained values:
    ``model`` (the ticket's network) with ``directory``'s ``trained.npz`` or,
    when ``settings`` transform the network (soft activation, extra skips),
    the transformed network with its ``transformed.npz``. A phase that trained
    with a transform but has no ``transformed.npz`` (written by an older
    version) is a :class:`~keras_lottery.errors.RunFolderError`: its
    ``trained.npz`` alone would be another network than the one trained.

    >>> network = trained_network(model, config.retrain, "runs/imp_3f/round_003")
    """
    plan = RetrainPlan(settings)
    if not plan.transforms:
        assign_all(model, load_arrays(paths.trained(directory), _TRAINED))
        return model
    path = paths.transformed(directory)
    if not os.path.exists(path):
        raise RunFolderError(
            f"{directory} trained its ticket with retrain.tweaks "
            f"{settings.tweaks}, which change the network, but holds no "
            f"{os.path.basename(path)} (the trained network's state; written "
            "since 2026-11-30): its trained.npz alone is not the network that "
            "was trained. Export the ticket with --weights rewind, or train it "
            "again with keras-lottery retrain."
        )
    return plan.trained_network(model, load_arrays(path, _TRAINED))


_TRAINED = "a phase's trained state"


def retrain_seed(run_seed: int, round: int, seed: int) -> int:
    """The random seed of a retraining (initialization of extra paths, data
    order, dropout): a pure function of the run's seed, the round and the
    replicate seed (apart from every control's :func:`controls.branch_seed`)."""
    return run_seed + 100_003 * (round + 1) + 50_021 + seed


def load_retrains(run_dir: str) -> dict[int, list[dict]]:
    """``{round: [retrain record, ...]}`` of every finished retraining of a
    run folder, each verified against its manifest."""
    out: dict[int, list[dict]] = {}
    for path in paths.all_retrain_records(run_dir):
        verify_branch(run_dir, os.path.dirname(path))
        data = read_json(
            path,
            "a retrain record.json of a run folder",
            ("round", "label", "training"),
        )
        out.setdefault(int(data["round"]), []).append(data)
    return out


def column_name(record: dict) -> str:
    """``retrain:<tweaks>``, ``_s<seed>`` for seeds other than 0."""
    return f"retrain:{record['label']}" + (
        f"_s{record['seed']}" if record["seed"] else ""
    )
