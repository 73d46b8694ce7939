"""Instability analysis: linear mode connectivity of copies trained from one state.

Frankle, Dziugaite, Roy & Carbin ("Linear Mode Connectivity and the Lottery
Ticket Hypothesis", 2020) train two copies of a network from the same state
``W_k`` (same weights, same masks, same recipe) that differ only in SGD noise
(data order and augmentation), then evaluate the error of
``(1 - a) * W1 + a * W2`` at evenly spaced ``a`` in [0, 1]. The *instability*
(error barrier) is ``max_a error(a) - mean(error(0), error(1))``; a network is
*stable* when it is below a threshold (the paper's is 2%). Rewinding works,
they argue, roughly when the subnetwork at ``k`` is stable.

- :func:`train_copy`: one copy of a model or a
  :class:`~keras_lottery.ticket.Ticket`, trained with a
  :class:`~keras_lottery.recipes.Recipe` from step ``k`` to the end;
- :func:`instability`: pairs of copies (:func:`pair_seeds`), their
  interpolation curves (:mod:`keras_lottery.analysis.interpolation`) and the
  summary over replicates (:class:`InstabilityResult`). Nothing is written
  unless ``cache_dir`` is given (see :mod:`keras_lottery.analysis.copies`).

Example:

>>> recipe = Recipe(load_config("configs/lenet_mnist.yaml", ["data.path=m.npz"]))
>>> ticket = Ticket.load("runs/imp_.../round_007/ticket.npz")
>>> result = instability(ticket, recipe, pairs=2)   # from the ticket's step k
>>> print(result.summary())
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery._messages import print_msg
from keras_lottery.analysis.copies import CopyCache, copy_summary
from keras_lottery.analysis.interpolation import (
    InterpolationCurve,
    curve_between_states,
)
from keras_lottery.analysis.results import InstabilityResult, PairResult
from keras_lottery.config import StabilityConfig
from keras_lottery.rewind import capture_state, restore_state
from keras_lottery.ticket import Ticket
from keras_lottery.training import TrainingRecord, train_from_step

__all__ = [
    "InstabilityResult",
    "PairResult",
    "default_start_step",
    "instability",
    "pair_seeds",
    "settings_with",
    "start_model",
    "train_copy",
]


# --------------------------------------------------------------------------- copies


def start_model(start, recipe):
    """The model a copy starts from: ``start`` itself (a model: its current
    weights and masks) or, for a :class:`Ticket`, the recipe's model with the
    ticket applied."""
    if isinstance(start, Ticket):
        model = recipe.build_model()
        start.apply(model)
        return model
    if not isinstance(start, keras.Model):
        raise ValueError(
            f"start must be a Keras model or a Ticket; got {type(start).__name__}."
        )
    return start


def default_start_step(start) -> int:
    """A ticket's rewind step (``metadata['rewind_iterations']``), else 0."""
    if isinstance(start, Ticket):
        return int(start.metadata.get("rewind_iterations", 0) or 0)
    return 0


def _checked_start_step(start, start_step, recipe) -> int:
    """``start_step`` (default: :func:`default_start_step`), checked against
    the recipe's length."""
    step = default_start_step(start) if start_step is None else int(start_step)
    if not 0 <= step < recipe.total_steps:
        raise ValueError(
            f"start_step must be in [0, {recipe.total_steps}) (the recipe trains "
            f"{recipe.total_steps} steps); got {step}."
        )
    return step


def train_copy(
    start,
    recipe,
    order_seed: int,
    *,
    start_step: int | None = None,
    verbose: int = 0,
):
    """Trains one copy of ``start`` from ``start_step`` to the end of the recipe.

    The copy gets ``start``'s weights and masks, a fresh optimizer from the
    recipe and the recipe's learning-rate schedule continuing from
    ``start_step`` (exactly as IMP retrains, see
    :func:`keras_lottery.training.train_from_step`). Its data order and
    augmentation come from the seeded pipeline with ``order_seed``; every other
    random draw (dropout) is seeded with the run's seed, so two copies with
    the same ``order_seed`` are identical up to floating-point nondeterminism.

    Returns ``(model, TrainingRecord)``; the model holds the final weights.

    >>> copy, record = train_copy(ticket, recipe, order_seed=3)
    """
    template = start_model(start, recipe)
    step = _checked_start_step(start, start_step, recipe)
    _check_seed(order_seed, "order_seed")
    copy = _clone_with_state(template)
    recipe.compile(copy)
    keras.utils.set_random_seed(recipe.config.seed)
    record = train_from_step(
        copy,
        step,
        compile_config=copy.get_compile_config(),
        phase=f"instability copy (order seed {order_seed})",
        **recipe.fit_kwargs(order_seed=order_seed, verbose=verbose),
    )
    return copy, record


def _clone_with_state(template):
    try:
        copy = keras.models.clone_model(template)
    except Exception as error:
        raise ValueError(
            "Copies are made with keras.models.clone_model, which cannot clone "
            f"this model ({error}). Build it as a Functional or Sequential model."
        ) from error
    masks = pruning.get_masks(template)
    if masks:
        pruning.set_masks(copy, masks)
    restore_state(copy, capture_state(template))
    return copy


def _check_seed(seed, what):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be an int >= 0; got {seed!r}.")


def pair_seeds(
    pairs: int, first_seed: int = 1, seeds=None, allow_equal_seeds: bool = False
) -> list[tuple[int, int]]:
    """The data-order seeds of each pair: ``seeds`` as given, or copies
    ``first_seed + j`` paired two by two.

    Raises ``ValueError`` when a pair's two seeds are equal (the copies would
    not differ in SGD noise, and the barrier would be 0 by construction) unless
    ``allow_equal_seeds=True`` (useful only to check determinism).
    """
    if seeds is None:
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"pairs must be an int >= 1; got {pairs!r}.")
        _check_seed(first_seed, "first_seed")
        seeds = [(first_seed + 2 * i, first_seed + 2 * i + 1) for i in range(pairs)]
    out = []
    for pair in seeds:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"seeds must be a list of (seed_a, seed_b) pairs; got {pair!r}."
            )
        a, b = pair
        _check_seed(a, "seed")
        _check_seed(b, "seed")
        if a == b and not allow_equal_seeds:
            raise ValueError(
                f"The two copies of a pair need different data-order seeds; got "
                f"({a}, {b}). Equal seeds train identical copies (barrier 0 by "
                "construction). Pass allow_equal_seeds=True only to test "
                "determinism."
            )
        out.append((int(a), int(b)))
    if not out:
        raise ValueError("seeds is empty: give at least one pair.")
    return out


def settings_with(settings: StabilityConfig | None, overrides: Mapping):
    """``settings`` (default: ``StabilityConfig()``) with keyword overrides,
    validated; unknown names are errors."""
    settings = settings if settings is not None else StabilityConfig()
    allowed = {f.name for f in dataclasses.fields(StabilityConfig)}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise ValueError(
            f"Unknown stability setting(s) {unknown}; allowed: {sorted(allowed)}."
        )
    return dataclasses.replace(settings, **dict(overrides))


# --------------------------------------------------------------------------- analysis


def instability(
    start,
    recipe,
    *,
    start_step: int | None = None,
    settings: StabilityConfig | None = None,
    seeds: Sequence | None = None,
    allow_equal_seeds: bool = False,
    cache_dir: str | None = None,
    verbose: int = 0,
    **overrides,
) -> InstabilityResult:
    """Trains pairs of copies of ``start`` and measures their instability.

    Args:
        start: a model (its current weights and masks are the state at
            ``start_step``) or a :class:`Ticket` (masks + rewind weights).
        recipe: the :class:`~keras_lottery.recipes.Recipe` both copies train
            with (and whose test / training splits are evaluated).
        start_step: the step ``k`` the copies start at (default: a ticket's
            rewind step, else 0).
        settings: a :class:`~keras_lottery.config.StabilityConfig` (default:
            ``recipe.config.stability``); keyword ``overrides`` replace fields,
            e.g. ``pairs=3, points=11``.
        seeds: explicit ``[(seed_a, seed_b), ...]`` data-order seeds instead of
            ``settings.pairs`` pairs from ``settings.seed``.
        allow_equal_seeds: accept a pair with equal seeds (a determinism check;
            such a pair has instability 0 up to float noise).
        cache_dir: if set, each trained copy and each pair's curve are saved
            there (:mod:`keras_lottery.analysis.copies`) and reused by a later
            call, so an interrupted analysis resumes without retraining
            finished copies. One folder per starting state and recipe.

    Returns an :class:`InstabilityResult` (curves on ``"test"`` and ``"train"``).

    >>> result = instability(model, recipe, start_step=0, pairs=2, points=11)
    >>> result.stats("test")["mean"], result.stable("test")
    """
    base = settings if settings is not None else recipe.config.stability
    settings = settings_with(base, overrides)
    pairs = pair_seeds(settings.pairs, settings.seed, seeds, allow_equal_seeds)
    template = start_model(start, recipe)
    step = _checked_start_step(start, start_step, recipe)
    store = CopyCache(cache_dir, template, recipe, step) if cache_dir else None
    run = _Pairs(template, recipe, step, settings, store, pairs, verbose)
    return InstabilityResult(
        pairs=[run.result(i, pair) for i, pair in enumerate(pairs)],
        threshold=settings.threshold,
        start_step=step,
        settings={**dataclasses.asdict(settings), "seeds": [list(p) for p in pairs]},
    )


def _evaluation_data(recipe, settings: StabilityConfig) -> tuple[dict, object]:
    """The splits each curve is evaluated on, and the training batches
    batch-norm statistics are re-estimated from (None when not asked for)."""
    data = {
        "test": recipe.test_data,
        "train": recipe.train_eval_data(
            settings.train_eval_limit, batch_size=settings.eval_batch_size
        ),
    }
    bn_data = None
    if settings.bn_reestimate_batches:
        bn_data = recipe.train_eval_data(
            settings.bn_reestimate_batches * recipe.batch_size,
            batch_size=recipe.batch_size,
        )
    return data, bn_data


def _curve_settings(settings: StabilityConfig) -> dict:
    """The settings a saved pair curve depends on (others reuse it)."""
    return {
        "points": settings.points,
        "train_eval_limit": settings.train_eval_limit,
        "bn_reestimate_batches": settings.bn_reestimate_batches,
    }


class _Pairs:
    """The pairs of one analysis, in order: each pair's copies are loaded from
    the cache, kept from an earlier pair or trained, then its curve evaluated
    in one probe model (made at the first pair that needs it)."""

    def __init__(self, template, recipe, step, settings, store, pairs, verbose):
        self.template, self.recipe, self.step = template, recipe, step
        self.settings, self.store, self.verbose = settings, store, verbose
        self.count = len(pairs)
        self.data, self.bn_data = _evaluation_data(recipe, settings)
        self.curve_settings = _curve_settings(settings)
        # A copy that a later pair uses again stays in memory until then (a pair
        # with two equal seeds still trains twice: that is its point).
        self.later = collections.Counter(seed for pair in pairs for seed in set(pair))
        self.kept = {}
        self.probe = None

    def result(self, i: int, pair: tuple[int, int]) -> PairResult:
        """The result of pair ``i``: saved, or trained and evaluated now."""
        for seed in set(pair):
            self.later[seed] -= 1
        cached = self.store.pair(*pair, self.curve_settings) if self.store else None
        if cached is not None:
            self._forget_unused()
            return cached
        states, copies = self._copies(pair)
        curve = self._curve(states)
        result = PairResult(pair, curve, copies)
        if self.store:
            self.store.save_pair(result, self.curve_settings)
        if self.verbose:
            _report_pair(i, self.count, pair, curve)
        return result

    def _copies(self, pair):
        states, copies = [], []
        for seed in pair:
            state, summary = self.kept.get(seed) or self._trained_copy(seed)
            states.append(state)
            copies.append(summary)
        for seed, state, summary in zip(pair, states, copies, strict=True):
            self.kept[seed] = (state, summary)
        self._forget_unused()
        return states, copies

    def _forget_unused(self):
        self.kept = {seed: v for seed, v in self.kept.items() if self.later[seed] > 0}

    def _trained_copy(self, seed):
        if self.store is not None:
            found = self.store.copy(seed)
            if found is not None:
                return found
        step = self.step
        copy, record = train_copy(self.template, self.recipe, seed, start_step=step)
        summary = copy_summary(seed, record)
        state = capture_state(copy)
        if self.store is not None:
            self.store.save_copy(seed, state, summary)
        if self.verbose:
            _report_copy(seed, step, self.recipe.total_steps, record)
        del copy
        return state, summary

    def _curve(self, states) -> InterpolationCurve:
        if self.probe is None:
            self.probe = _clone_with_state(self.template)
            self.recipe.compile(self.probe)
        return curve_between_states(
            self.probe,
            states[0],
            states[1],
            self.data,
            self.settings.points,
            bn_data=self.bn_data,
            bn_batches=self.settings.bn_reestimate_batches,
            bn_batch_size=self.recipe.batch_size,
            batch_size=self.settings.eval_batch_size,
        )


def _report_copy(seed: int, step: int, total: int, record: TrainingRecord) -> None:
    final = record.final.get("val_accuracy", record.final.get("accuracy"))
    print_msg(
        f"[keras_lottery] copy (order seed {seed}) trained steps {step}.."
        f"{total}: {record.steps} steps, {record.wall_time:.1f}s, "
        f"final {'val_' if 'val_accuracy' in record.final else ''}accuracy "
        f"{final:.4f}"
    )


def _report_pair(i: int, count: int, pair, curve: InterpolationCurve) -> None:
    barriers = ", ".join(f"{s} {100 * curve.barrier(s):.2f} pp" for s in curve.errors)
    print_msg(
        f"[keras_lottery] pair {i + 1}/{count} (seeds {pair[0]}, "
        f"{pair[1]}): instability {barriers}"
    )
