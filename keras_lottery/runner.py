"""Runs a :class:`RunConfig` in a hash-named folder: idempotent and resumable.

Layout of ``<out>/<method>_<hash>/``:

- ``config.yaml``: the full config (every field);
- IMP (``method: imp``): ``round_NNN/{record.json, ticket.npz, trained.npz}`` and
  ``rewind_state.npz``, written by the IMP driver as each round finishes;
- Continuous Sparsification (``method: cs``): ``search_NNN/{record.json,
  state.npz, optimizer.npz}``, ``rewind_state.npz``, ``ticket.npz`` and
  ``ticket/{record.json, trained.npz}`` (see :mod:`keras_lottery.cs`);
- ``result.json``: written last; its presence means the run is finished;
- ``report.txt`` and a plot (``accuracy_vs_weights.png`` or ``cs_search.png``).

IMP runs that differ only in ``pruning.rewind`` share their dense round 0 (it does
not depend on the rewind point): ``run(config, extra_rewinds=[...])`` also
saves the state at those points, and :func:`seed_dense_round` starts another
run's folder from it, so the dense network is trained once for a rewind sweep.
Likewise, CS runs that differ only in how the search's logits become a ticket
(``cs.target_sparsity``, ``cs.mode``, ``baselines``) share the search:
:func:`seed_cs_search` copies it, so another target costs one ticket training.

Re-running a finished config does nothing; an interrupted one resumes after the
last finished round and, with the same seed, ends with the same masks.

Example:

>>> run_dir = run(load_config("configs/lenet_mnist.yaml"), out="runs")
"""

from __future__ import annotations

import fnmatch
import json
import os

import keras

from keras_lottery import cs, models, report
from keras_lottery._io import (
    atomic_copy,
    atomic_write_json,
    atomic_write_text,
    finished_phases,
)
from keras_lottery.config import RunConfig
from keras_lottery.imp import EXTRA_REWINDS, IterativeMagnitudePruning
from keras_lottery.recipes import Recipe
from keras_lottery.rewind import Step


def run_dir_for(config: RunConfig, out: str) -> str:
    return os.path.join(out, config.hashname())


METHODS = ("imp", "cs")


def run(
    config: RunConfig,
    out: str = "runs",
    verbose: int = 1,
    prepared=None,
    extra_rewinds=(),
) -> str:
    """Runs (or resumes, or skips if finished) ``config``; returns the run folder.

    ``prepared`` optionally gives the ``(recipe, model)`` pair that
    :func:`prepare` returns for this config (Keras Tuner builds it first).
    ``extra_rewinds`` (IMP): further rewind points whose dense-round state is
    saved for :func:`seed_dense_round` (no effect on this run's results).
    """
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {config.method!r}.")
    directory = run_dir_for(config, out)
    if os.path.exists(os.path.join(directory, "result.json")):
        if verbose:
            print(f"[keras_lottery] {directory} is already finished; nothing to do.")
        return directory
    recipe, model = prepared if prepared is not None else prepare(config)
    os.makedirs(directory, exist_ok=True)
    atomic_write_text(os.path.join(directory, "config.yaml"), config.to_yaml())
    fit_kwargs = recipe.fit_kwargs(verbose=2 if verbose else 0)
    if config.method == "imp":
        driver = _imp(config, model, directory, verbose, extra_rewinds)
    else:
        driver = _cs(config, directory, verbose)
    driver.run(model, test_data=recipe.test_data, **fit_kwargs)
    report.write_report(directory)
    atomic_write_json(
        os.path.join(directory, "result.json"),
        {"config": config.to_dict(), **report.summary(directory)},
    )
    return directory


def prepare(config: RunConfig):
    """The :class:`Recipe` and the compiled model a run of ``config`` trains:
    the registry model, seeded with ``config.seed`` (soft-masked for CS)."""
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {config.method!r}.")
    recipe = Recipe(config)
    keras.utils.set_random_seed(config.seed)
    model = recipe.build_model()
    if config.method == "imp":
        recipe.compile(model)
        return recipe, model
    model = cs.soften(
        model,
        resolve_layers(model, config.cs.layers),
        mask_initial_value=config.cs.mask_initial_value,
        penalty=config.cs.penalty,
    )
    recipe.compile(model, exclude=[cs.LOGITS])
    return recipe, model


def _imp(
    config, model, directory, verbose, extra_rewinds=()
) -> IterativeMagnitudePruning:
    return IterativeMagnitudePruning(
        fraction=config.pruning.fraction,
        rounds=config.pruning.rounds,
        target_sparsity=config.pruning.target_sparsity,
        scope=config.pruning.scope,
        layers=resolve_layers(model, config.pruning.layers),
        exclude=config.pruning.exclude,
        layer_fractions=resolve_patterns(model, config.pruning.layer_fractions),
        rewind=config.pruning.rewind,
        baselines=config.baselines,
        evaluate_at=config.pruning.evaluate_at,
        seed=config.seed,
        checkpoint_dir=directory,
        verbose=verbose,
        extra_rewinds=extra_rewinds,
    )


def _cs(config, directory, verbose) -> cs.ContinuousSparsification:
    return cs.ContinuousSparsification(
        rounds=config.cs.rounds,
        final_temperature=config.cs.final_temperature,
        rewind=config.cs.rewind,
        mode=config.cs.mode,
        target_sparsity=config.cs.target_sparsity,
        logit_reset=config.cs.logit_reset,
        baselines=config.baselines,
        evaluate_at=config.cs.evaluate_at,
        seed=config.seed,
        checkpoint_dir=directory,
        verbose=verbose,
    )


def resolve_layers(model, layers) -> list[str]:
    """A registry scope name ('paper', 'all', ...) or an explicit list of names."""
    if isinstance(layers, str):
        return models.pruning_scope(model, layers)
    return list(layers)


def resolve_patterns(model, patterns: dict[str, float]) -> dict[str, float]:
    """Expands fnmatch patterns in ``layer_fractions`` keys to masked-layer names."""
    from keras_lottery.pruning import layer_names

    names = layer_names(model)
    resolved = {}
    for pattern, value in patterns.items():
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ValueError(
                f"pruning.layer_fractions key {pattern!r} matches no masked "
                f"layer; layers are {names}."
            )
        for name in matched:
            resolved[name] = value
    return resolved


def load_result(directory: str) -> dict:
    with open(os.path.join(directory, "result.json")) as handle:
        return json.load(handle)


def has_dense_round(directory: str) -> bool:
    """Whether the run folder holds a finished round 0."""
    return os.path.exists(os.path.join(directory, "round_000", "record.json"))


def seed_dense_round(donor_dir: str, config: RunConfig, out: str = "runs") -> bool:
    """Starts ``config``'s run folder from ``donor_dir``'s dense round 0.

    The donor must be a run of the same config except ``pruning.rewind`` that
    saved ``config``'s rewind point (``run(..., extra_rewinds=[...])``). The
    files written are exactly those the run would write after its own round 0
    (same record, trained weights, ticket and rewind state), so running
    ``config`` afterwards resumes at round 1 with results identical to an
    unseeded run. Returns False (and writes nothing) when the folder already
    has round 0 or the donor lacks this rewind point.
    """
    target = run_dir_for(config, out)
    if has_dense_round(target):
        return False
    donor = load_config_of(donor_dir)
    if _config_without(donor, "pruning.rewind") != _config_without(
        config, "pruning.rewind"
    ):
        raise ValueError(
            f"{donor_dir} is not a run of the same config up to pruning.rewind: "
            "its dense round cannot be shared."
        )
    step = str(Step.parse(config.pruning.rewind))
    source = os.path.join(donor_dir, EXTRA_REWINDS, step)
    if not (has_dense_round(donor_dir) and os.path.isdir(source)):
        return False
    os.makedirs(os.path.join(target, "round_000"), exist_ok=True)
    atomic_write_text(os.path.join(target, "config.yaml"), config.to_yaml())
    for src, dst in (
        (os.path.join(source, "rewind_state.npz"), "rewind_state.npz"),
        (os.path.join(source, "ticket.npz"), "round_000/ticket.npz"),
        (os.path.join(donor_dir, "round_000", "trained.npz"), "round_000/trained.npz"),
        # record.json last: it marks round 0 as finished.
        (os.path.join(donor_dir, "round_000", "record.json"), "round_000/record.json"),
    ):
        atomic_copy(src, os.path.join(target, dst))
    return True


#: CS fields that only change how the finished search becomes a ticket.
TICKET_ONLY_CS_FIELDS = ("target_sparsity", "mode")


def seed_cs_search(donor_dir: str, config: RunConfig, out: str = "runs") -> bool:
    """Starts CS ``config``'s run folder from ``donor_dir``'s finished search.

    The donor must be a CS run of the same config except ``cs.target_sparsity``,
    ``cs.mode`` and ``baselines`` (they only act after the search) with all of
    its ``cs.rounds`` search rounds finished. The files copied are exactly those
    the run would write itself, so running ``config`` afterwards trains only the
    ticket, with results identical to an unseeded run. Returns False (and
    writes nothing) when the folder already has search rounds.

    >>> seed_cs_search("runs/cs_3e9d0bb40e9e", load_config(
    ...     "configs/cs_resnet20_cifar10.yaml", ["cs.target_sparsity=0.9"]))
    """
    if config.method != "cs":
        raise ValueError(
            f"seed_cs_search needs a CS config; got method {config.method!r}."
        )
    target = run_dir_for(config, out)
    if os.path.exists(target) and finished_phases(target, "search"):
        return False
    donor = load_config_of(donor_dir)
    ticket_only = [f"cs.{field}" for field in TICKET_ONLY_CS_FIELDS] + ["baselines"]
    if _config_without(donor, *ticket_only) != _config_without(config, *ticket_only):
        raise ValueError(
            f"{donor_dir} is not a CS run of the same config up to "
            f"cs.{'/cs.'.join(TICKET_ONLY_CS_FIELDS)} and baselines: its search "
            "cannot be shared."
        )
    rounds = finished_phases(donor_dir, "search")
    if rounds != list(range(config.cs.rounds)):
        raise ValueError(
            f"{donor_dir} has finished search rounds {rounds}, not all "
            f"{config.cs.rounds}: finish it first (keras-lottery run resumes it)."
        )
    os.makedirs(target, exist_ok=True)
    atomic_write_text(os.path.join(target, "config.yaml"), config.to_yaml())
    atomic_copy(
        os.path.join(donor_dir, "rewind_state.npz"),
        os.path.join(target, "rewind_state.npz"),
    )
    for r in rounds:
        name = f"search_{r:03d}"
        os.makedirs(os.path.join(target, name), exist_ok=True)
        # record.json last: it marks the round as finished.
        for file in ("state.npz", "optimizer.npz", "record.json"):
            atomic_copy(
                os.path.join(donor_dir, name, file), os.path.join(target, name, file)
            )
    return True


def _config_without(config: RunConfig, *fields: str) -> dict:
    """``config`` as a dict without ``fields`` (dotted paths) and ``stability``.

    Two runs whose dicts agree share the phases those fields do not act on.
    """
    data = config.to_dict()
    for path in (*fields, "stability"):
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node.pop(leaf, None)
    return data


def load_config_of(directory: str) -> RunConfig:
    """The config saved in a run folder (``config.yaml``)."""
    from keras_lottery.config import load_config

    path = os.path.join(directory, "config.yaml")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{directory} is not a run folder (no config.yaml).")
    return load_config(path)
