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
from keras_lottery._io import atomic_write_json, atomic_write_text
from keras_lottery.config import RunConfig
from keras_lottery.imp import IterativeMagnitudePruning
from keras_lottery.recipes import Recipe


def run_dir_for(config: RunConfig, out: str) -> str:
    return os.path.join(out, config.hashname())


METHODS = ("imp", "cs")


def run(config: RunConfig, out: str = "runs", verbose: int = 1, prepared=None) -> str:
    """Runs (or resumes, or skips if finished) ``config``; returns the run folder.

    ``prepared`` optionally gives the ``(recipe, model)`` pair that
    :func:`prepare` returns for this config (Keras Tuner builds it first).
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
        driver = _imp(config, model, directory, verbose)
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


def _imp(config, model, directory, verbose) -> IterativeMagnitudePruning:
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
