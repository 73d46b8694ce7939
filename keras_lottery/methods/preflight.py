"""Checks of a run's config against its data and model, made before the run
folder is created: values that are valid on their own but cannot work together
(a rewind point after the end of training, CS rounds too short to anneal,
``evaluate_at: best`` without a validation split, IMP rounds that prune a
layer down to no weight at all) fail at once, naming the config keys.

A method registers its check as ``preflight`` (see
:mod:`keras_lottery.methods.registry`); the runner calls it with the config,
the :class:`~keras_lottery.recipes.Recipe`, the driver and the model.

Example:

>>> recipe, model = runner.prepare(config)
>>> driver = IterativeMagnitudePruning.from_config(config, model)
>>> preflight.imp(config, recipe, driver, model)
Traceback (most recent call last):
ConfigError: 'pruning.rewind' (100ep = 2100 iterations) must come before ...
"""

from __future__ import annotations

from keras_lottery import pruning
from keras_lottery.errors import ConfigError
from keras_lottery.steps import Step


def imp(config, recipe, driver, model) -> None:
    """IMP: the rewind point lies inside training, ``evaluate_at: best`` has
    a validation split, the last round leaves every pruned layer a weight,
    and the ``retrain.tweaks`` fit the model."""
    _rewind_inside(config.pruning.rewind, "pruning.rewind", config, recipe)
    _best_needs_validation(config.pruning.evaluate_at, "pruning", config)
    _no_empty_layer(config, driver, model)
    if driver.retrain:  # IMP's round 0 is the KD teacher
        driver.retrain.check(model, has_teacher=True)


def cs(config, recipe, driver, model) -> None:
    """Continuous Sparsification: rounds of at least 2 epochs, the rewind point
    inside the first round, ``evaluate_at: best`` with a validation split."""
    if recipe.epochs < 2:
        raise ConfigError(
            f"'training.duration' must cover at least 2 epochs for method: cs "
            "(each search round anneals the temperature over its epochs); got "
            f"{config.training.duration!r} = {recipe.epochs} epoch(s) of "
            f"{recipe.steps_per_epoch} steps."
        )
    _rewind_inside(config.cs.rewind, "cs.rewind", config, recipe)
    _best_needs_validation(config.cs.evaluate_at, "cs", config)
    if driver.retrain:  # the ticket's architecture (soft masks are removed later)
        driver.retrain.check(model, has_teacher=False)


def _rewind_inside(rewind, key: str, config, recipe) -> None:
    at = Step.parse(rewind).iterations(recipe.steps_per_epoch)
    if at >= recipe.total_steps:
        raise ConfigError(
            f"'{key}' ({Step.parse(rewind)} = {at} iterations) must come before the "
            f"end of training: 'training.duration' {config.training.duration!r} = "
            f"{recipe.epochs} epoch(s) x {recipe.steps_per_epoch} steps = "
            f"{recipe.total_steps} iterations. Choose an earlier '{key}' or a "
            "longer 'training.duration'."
        )


def _best_needs_validation(evaluate_at: str, section: str, config) -> None:
    if evaluate_at == "best" and config.data.validation_size == 0:
        raise ConfigError(
            f"'{section}.evaluate_at: best' picks the epoch of lowest validation "
            "loss, but 'data.validation_size' is 0: hold out a validation split "
            f"or use '{section}.evaluate_at: final'."
        )


def _no_empty_layer(config, driver, model) -> None:
    totals = {
        layer.name: layer.total for layer in pruning.sparsity_report(model).layers
    }
    for what, total, remaining in _final_counts(driver, totals):
        if remaining == 0:
            raise ConfigError(
                f"'pruning.rounds' = {driver.rounds} at 'pruning.fraction' "
                f"{driver.fraction} (or its 'pruning.layer_fractions') leaves 0 of "
                f"the {total} weights of {what}: the network would be cut in two "
                "and train to chance accuracy. Use fewer rounds, a lower "
                "'pruning.target_sparsity' or a smaller fraction."
            )


def _final_counts(driver, totals) -> list[tuple[str, int, int]]:
    """``(pool, weights, weights kept)`` after the last round, per pool
    (layerwise: each layer; global: the layers ranked together), counted as
    ``pruning.prune_to_density`` counts them."""
    density, per_layer = driver.densities(driver.rounds)
    selected = list(totals) if driver.layers is None else list(driver.layers)
    chosen = [n for n in selected if n not in driver.exclude]
    pools = [(f"layer {n!r}", [n], per_layer[n]) for n in chosen if n in per_layer]
    rest = [n for n in chosen if n not in per_layer]
    if driver.scope == "global" and rest:
        pools.append((f"the layers {rest} (global scope)", rest, density))
    else:
        pools += [(f"layer {n!r}", [n], density) for n in rest]
    out = []
    for what, names, value in pools:
        total = sum(totals[n] for n in names)
        out.append((what, total, round(value * total)))
    return out
