"""Instability analysis: linear mode connectivity of copies trained from one state.

Frankle, Dziugaite, Roy & Carbin ("Linear Mode Connectivity and the Lottery
Ticket Hypothesis", 2020) train two copies of a network from the same state
``W_k`` (same weights, same masks, same recipe) that differ only in SGD noise
(data order and augmentation), then evaluate the error of
``(1 - a) * W1 + a * W2`` at evenly spaced ``a`` in [0, 1]. The *instability*
(error barrier) is ``max_a error(a) - mean(error(0), error(1))``; a network is
*stable* when it is below 2%. Rewinding works, they argue, roughly when the
subnetwork at ``k`` is stable.

Building blocks (pure library: nothing is written unless ``cache_dir`` is given):

- :func:`check_compatible`: same architecture and masks, or a clear error;
- :func:`interpolate_states` / :func:`write_interpolation`: every variable
  (batch-norm moving statistics included) is interpolated; masks are shared and
  re-applied, so pruned weights stay exactly zero along the path;
- :func:`reestimate_batch_norm`: optional recomputation of batch-norm statistics
  at each point;
- :func:`interpolation_curve`: errors (and losses) along the path on named data;
- :func:`train_copy` and :func:`instability`: train pairs of copies from a model
  or a :class:`~keras_lottery.ticket.Ticket` with a
  :class:`~keras_lottery.recipes.Recipe`, and summarize replicates.

Example:

>>> recipe = Recipe(load_config("configs/lenet_mnist.yaml", ["data.path=m.npz"]))
>>> ticket = Ticket.load("runs/imp_.../round_007/ticket.npz")
>>> result = instability(ticket, recipe, pairs=2)   # from the ticket's step k
>>> print(result.summary())
>>> curve = interpolation_curve(model_a, model_b, {"test": (x_test, y_test)})
>>> curve.barrier("test")
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery._io import atomic_write_json, load_arrays, save_arrays
from keras_lottery.config import StabilityConfig
from keras_lottery.rewind import capture_state, restore_state
from keras_lottery.ticket import Ticket
from keras_lottery.training import TrainingRecord, evaluate, train_from_step

# --------------------------------------------------------------------------- checks


def alphas(points: int) -> np.ndarray:
    """``points`` evenly spaced interpolation coefficients in [0, 1] (both
    endpoints included); ``points`` must be an int >= 2."""
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)):
        raise ValueError(f"points must be an int >= 2; got {points!r}.")
    if points < 2:
        raise ValueError(
            f"points must be >= 2 (the two endpoints at least); got {points}."
        )
    return np.linspace(0.0, 1.0, int(points))


def check_compatible(model_a, model_b) -> None:
    """Raises ``ValueError`` unless the two models can be interpolated: the same
    variables (count, shapes, dtypes, in ``model.weights`` order), the same
    masked layers, and identical masks.

    Layers are matched by position, so two builds of one architecture with
    different automatic names are compatible.
    """
    check_states(model_a, capture_state(model_a), capture_state(model_b), model_b)


def check_states(model, state_a, state_b, other=None) -> None:
    """Like :func:`check_compatible` for two full states (``capture_state``
    lists) of ``model``'s architecture. ``other`` names the second model's
    variables in messages."""
    weights = model.weights
    names_b = [v.path for v in other.weights] if other is not None else None
    for which, state in (("first", state_a), ("second", state_b)):
        if len(state) != len(weights):
            raise ValueError(
                f"Different architectures: the {which} endpoint has {len(state)} "
                f"variables, the model has {len(weights)}."
            )
    masks = _mask_index(model)
    for i, (variable, a, b) in enumerate(zip(weights, state_a, state_b, strict=True)):
        name_b = names_b[i] if names_b else variable.path
        if a.shape != tuple(variable.shape) or b.shape != a.shape:
            raise ValueError(
                f"Different architectures at variable {i}: '{variable.path}' has "
                f"shape {a.shape}, '{name_b}' has shape {b.shape}."
            )
        if a.dtype != b.dtype:
            raise ValueError(
                f"Different variable types at variable {i}: '{variable.path}' is "
                f"{a.dtype}, '{name_b}' is {b.dtype}."
            )
        if i in masks:
            if not np.array_equal(a, b):
                differ = int(np.sum(a != b))
                raise ValueError(
                    f"The masks of layer '{masks[i].name}' differ in {differ} of "
                    f"{a.size} entries: both endpoints must be the same subnetwork "
                    "(identical masks) to be interpolated."
                )
        elif not np.issubdtype(a.dtype, np.floating) and not np.array_equal(a, b):
            raise ValueError(
                f"Variable '{variable.path}' ({a.dtype}) is not a float and differs "
                "between the endpoints, so it cannot be interpolated."
            )


def _mask_index(model) -> dict[int, object]:
    """``{position in model.weights: masked layer}`` of every mask variable."""
    by_id = {id(layer.mask): layer for layer in pruning.masked_layers(model)}
    return {i: by_id[id(v)] for i, v in enumerate(model.weights) if id(v) in by_id}


# --------------------------------------------------------------------------- path


def interpolate_states(state_a, state_b, alpha: float) -> list[np.ndarray]:
    """``(1 - alpha) * a + alpha * b`` for every float array (computed in float64,
    rounded to the variable's dtype; exact at ``alpha`` 0 and 1); other arrays
    (masks) are taken from ``a``. Assumes :func:`check_states` passed."""
    alpha = float(alpha)
    out = []
    for a, b in zip(state_a, state_b, strict=True):
        if np.issubdtype(a.dtype, np.floating):
            mixed = (1.0 - alpha) * a.astype(np.float64) + alpha * b.astype(np.float64)
            out.append(mixed.astype(a.dtype))
        else:
            out.append(np.array(a))
    return out


def write_interpolation(model, state_a, state_b, alpha: float) -> None:
    """Writes the interpolated state into ``model``: every variable, batch-norm
    moving statistics included; the endpoints' (shared) masks are set and
    re-applied, so pruned weights are exactly zero."""
    check_states(model, state_a, state_b)
    _set_masks_from(model, state_a)
    restore_state(model, interpolate_states(state_a, state_b, alpha))


def _set_masks_from(model, state) -> None:
    masks = {layer.name: state[i] for i, layer in _mask_index(model).items()}
    current = pruning.get_masks(model) if masks else {}
    if any(not np.array_equal(current[n], m) for n, m in masks.items()):
        pruning.set_masks(model, masks)


def batch_norm_layers(model) -> list:
    """The batch-normalization layers of ``model`` (nested models included)."""
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def reestimate_batch_norm(model, data, batches: int, batch_size: int = 128) -> int:
    """Recomputes every batch-norm layer's moving mean and variance from
    ``batches`` forward passes in training mode; returns the batches used.

    The statistics are reset and replaced by the **cumulative average** of the
    per-batch statistics (each batch weighs the same, like PyTorch's
    ``momentum=None``; set per batch as momentum ``(i - 1) / i``), not Keras's
    exponential moving average, which would need hundreds of batches to forget
    the reset. Layers see batch statistics during these passes, as in training
    (dropout too, if any); weights are not changed. ``data`` is ``(x, y)``
    arrays (split into ``batch_size`` batches in order) or a dataset of
    ``(x, y)`` batches. Passes run eagerly (nothing is traced per point).
    """
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ValueError(f"batches must be an int >= 1; got {batches!r}.")
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        shape, dtype = tuple(layer.moving_mean.shape), layer.moving_mean.dtype
        layer.moving_mean.assign(np.zeros(shape, dtype))
        layer.moving_variance.assign(np.ones(shape, dtype))
    used = 0
    try:
        for used, x in enumerate(_input_batches(data, batch_size, batches), start=1):
            for layer in layers:
                layer.momentum = (used - 1) / used
            model(x, training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    if not used:
        raise ValueError("reestimate_batch_norm got no data.")
    return used


def _input_batches(data, batch_size, limit):
    if isinstance(data, tuple):
        x = data[0]
        for i in range(min(limit, -(-len(x) // batch_size))):
            yield x[i * batch_size : (i + 1) * batch_size]
        return
    for i, batch in enumerate(data):
        if i >= limit:
            return
        yield np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)


# --------------------------------------------------------------------------- curves


@dataclass
class InterpolationCurve:
    """Errors (1 - accuracy) and losses along the path, per named data split."""

    alphas: list[float]
    errors: dict[str, list[float]]
    losses: dict[str, list[float]] = field(default_factory=dict)

    def barrier(self, split: str = "test") -> float:
        """Instability: ``max_a error(a) - mean(error(0), error(1))`` (>= 0)."""
        errors = self._split(split)
        return float(max(errors) - (errors[0] + errors[-1]) / 2)

    def endpoint_errors(self, split: str = "test") -> tuple[float, float]:
        errors = self._split(split)
        return float(errors[0]), float(errors[-1])

    def _split(self, split):
        if split not in self.errors:
            raise ValueError(
                f"No curve on {split!r}; this curve has {sorted(self.errors)}."
            )
        return self.errors[split]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> InterpolationCurve:
        return cls(**data)


def interpolation_curve(
    model_a,
    model_b,
    data: Mapping,
    points: int = 30,
    *,
    bn_data=None,
    bn_batches: int = 0,
    bn_batch_size: int = 128,
    batch_size: int = 500,
) -> InterpolationCurve:
    """Errors of ``(1 - a) * model_a + a * model_b`` at ``points`` values of ``a``.

    Args:
        model_a, model_b: compatible models (see :func:`check_compatible`);
            ``model_a`` must be compiled with an accuracy metric (it is the
            model evaluated at every point, and gets its own state back at the
            end; ``model_b`` is only read).
        data: ``{name: (x, y) or dataset}``, e.g. ``{"test": ..., "train": ...}``.
        points: number of evenly spaced ``a`` in [0, 1] (>= 2).
        bn_data, bn_batches, bn_batch_size: when ``bn_batches > 0``, batch-norm
            statistics are re-estimated from ``bn_batches`` batches of
            ``bn_data`` at every point (see :func:`reestimate_batch_norm`).
        batch_size: evaluation batch size for array data.

    >>> curve = interpolation_curve(a, b, {"test": (x_test, y_test)}, points=11)
    >>> curve.barrier("test")
    """
    check_compatible(model_a, model_b)
    state_a, state_b = capture_state(model_a), capture_state(model_b)
    try:
        return curve_between_states(
            model_a,
            state_a,
            state_b,
            data,
            points,
            bn_data=bn_data,
            bn_batches=bn_batches,
            bn_batch_size=bn_batch_size,
            batch_size=batch_size,
        )
    finally:
        restore_state(model_a, state_a)


def curve_between_states(
    model,
    state_a,
    state_b,
    data: Mapping,
    points: int = 30,
    *,
    bn_data=None,
    bn_batches: int = 0,
    bn_batch_size: int = 128,
    batch_size: int = 500,
) -> InterpolationCurve:
    """:func:`interpolation_curve` for two full states (``capture_state`` lists),
    evaluated in ``model`` (compiled with an accuracy metric; left holding the
    last point). Weights are assigned into this one model, so its compiled
    evaluation function is reused at every point (no retracing)."""
    grid = alphas(points)
    if not data:
        raise ValueError("Give at least one data split, e.g. {'test': (x, y)}.")
    if not getattr(model, "compiled", False):
        raise ValueError(
            "Compile the model first, with metrics=['accuracy']: the curve "
            "reports error = 1 - accuracy."
        )
    if bn_batches and bn_data is None:
        raise ValueError("bn_batches > 0 needs bn_data to re-estimate from.")
    check_states(model, state_a, state_b)
    errors = {name: [] for name in data}
    losses = {name: [] for name in data}
    for alpha in grid:
        write_interpolation(model, state_a, state_b, alpha)
        if bn_batches:
            reestimate_batch_norm(model, bn_data, bn_batches, bn_batch_size)
        for name, split in data.items():
            metrics = _evaluate(model, split, batch_size)
            errors[name].append(1.0 - _accuracy(metrics))
            losses[name].append(float(metrics.get("loss", np.nan)))
    return InterpolationCurve([float(a) for a in grid], errors, losses)


def _evaluate(model, data, batch_size):
    if isinstance(data, tuple) and len(data) == 2:
        result = model.evaluate(
            data[0], data[1], batch_size=batch_size, verbose=0, return_dict=True
        )
        return {k: float(v) for k, v in result.items()}
    return evaluate(model, data)


def _accuracy(metrics: Mapping) -> float:
    if "accuracy" in metrics:
        return float(metrics["accuracy"])
    for key, value in metrics.items():
        if key.endswith("accuracy"):
            return float(value)
    raise ValueError(
        f"The model reports no accuracy metric (got {sorted(metrics)}): compile "
        "it with metrics=['accuracy']."
    )


# --------------------------------------------------------------------------- results


@dataclass
class PairResult:
    """One replicate: two copies (their data-order seeds) and their curve."""

    seeds: tuple[int, int]
    curve: InterpolationCurve
    copies: list[dict] = field(default_factory=list)
    """Training summaries of the two copies (final metrics, steps, seconds)."""

    def barrier(self, split: str = "test") -> float:
        return self.curve.barrier(split)

    def to_dict(self) -> dict:
        return {
            "seeds": list(self.seeds),
            "curve": self.curve.to_dict(),
            "copies": self.copies,
            "barriers": {s: self.curve.barrier(s) for s in self.curve.errors},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> PairResult:
        return cls(
            seeds=tuple(data["seeds"]),
            curve=InterpolationCurve.from_dict(data["curve"]),
            copies=list(data.get("copies", [])),
        )


@dataclass
class InstabilityResult:
    """Replicated instability of one starting state.

    ``stable(split)`` compares the *mean* barrier over pairs with ``threshold``.
    """

    pairs: list[PairResult]
    threshold: float
    start_step: int
    settings: dict = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.pairs[0].curve.errors) if self.pairs else []

    def barriers(self, split: str = "test") -> list[float]:
        return [p.barrier(split) for p in self.pairs]

    def stats(self, split: str = "test") -> dict:
        """Mean, sample standard deviation (0 for one pair), min and max of the
        barrier over pairs, and the mean endpoint error."""
        values = np.array(self.barriers(split))
        ends = [np.mean(p.curve.endpoint_errors(split)) for p in self.pairs]
        return {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "endpoint_error": float(np.mean(ends)),
            "stable": bool(values.mean() < self.threshold),
        }

    def stable(self, split: str = "test") -> bool:
        return self.stats(split)["stable"]

    def mean_curve(self, split: str = "test") -> dict:
        """Mean, min and max error at each ``a`` over pairs."""
        errors = np.array([p.curve.errors[split] for p in self.pairs])
        return {
            "alphas": self.pairs[0].curve.alphas,
            "mean": errors.mean(axis=0).tolist(),
            "min": errors.min(axis=0).tolist(),
            "max": errors.max(axis=0).tolist(),
        }

    def summary(self) -> str:
        """One line per split: barrier mean ± std over pairs and the verdict."""
        lines = []
        for split in self.splits:
            s = self.stats(split)
            verdict = "stable" if s["stable"] else "unstable"
            lines.append(
                f"{split}: instability {100 * s['mean']:.2f} ± {100 * s['std']:.2f} "
                f"pp over {len(self.pairs)} pair(s) (endpoint error "
                f"{100 * s['endpoint_error']:.2f}%) -> {verdict} at "
                f"{100 * self.threshold:g}%"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "start_step": self.start_step,
            "threshold": self.threshold,
            "settings": self.settings,
            "summary": {split: self.stats(split) for split in self.splits},
            "mean_curves": {split: self.mean_curve(split) for split in self.splits},
            "pairs": [p.to_dict() for p in self.pairs],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> InstabilityResult:
        return cls(
            pairs=[PairResult.from_dict(p) for p in data["pairs"]],
            threshold=data["threshold"],
            start_step=data["start_step"],
            settings=dict(data.get("settings", {})),
        )


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
    step = default_start_step(start) if start_step is None else int(start_step)
    if not 0 <= step < recipe.total_steps:
        raise ValueError(
            f"start_step must be in [0, {recipe.total_steps}) (the recipe trains "
            f"{recipe.total_steps} steps); got {step}."
        )
    _check_seed(order_seed, "order_seed")
    copy = _clone_with_state(template)
    recipe.compile(copy)
    keras.utils.set_random_seed(recipe.config.seed)
    record = train_from_step(
        copy,
        step,
        compile_config=copy.get_compile_config(),
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
        cache_dir: if set, each trained copy (``copy_seed{S}.npz`` + ``.json``)
            and each pair's curve (``pair_s{A}_s{B}.json``) are saved there and
            reused by a later call, so an interrupted analysis resumes without
            retraining finished copies. One folder per starting state: a
            folder holding copies of another start or recipe is an error.

    Returns an :class:`InstabilityResult` (curves on ``"test"`` and ``"train"``).

    >>> result = instability(model, recipe, start_step=0, pairs=2, points=11)
    >>> result.stats("test")["mean"], result.stable("test")
    """
    base = settings if settings is not None else recipe.config.stability
    settings = settings_with(base, overrides)
    pairs = pair_seeds(settings.pairs, settings.seed, seeds, allow_equal_seeds)
    template = start_model(start, recipe)
    step = default_start_step(start) if start_step is None else int(start_step)
    if not 0 <= step < recipe.total_steps:
        raise ValueError(
            f"start_step must be in [0, {recipe.total_steps}) (the recipe trains "
            f"{recipe.total_steps} steps); got {step}."
        )
    store = _Cache(cache_dir, template, recipe, step) if cache_dir else None
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
    curve_settings = {
        "points": settings.points,
        "train_eval_limit": settings.train_eval_limit,
        "bn_reestimate_batches": settings.bn_reestimate_batches,
    }
    probe = None
    results = []
    # A copy that a later pair uses again stays in memory until then (a pair
    # with two equal seeds still trains twice: that is its point).
    later = collections.Counter(seed for pair in pairs for seed in set(pair))
    kept = {}
    for i, (seed_a, seed_b) in enumerate(pairs):
        for seed in {seed_a, seed_b}:
            later[seed] -= 1
        cached = store.pair(seed_a, seed_b, curve_settings) if store else None
        if cached is not None:
            results.append(cached)
            kept = {seed: v for seed, v in kept.items() if later[seed] > 0}
            continue
        states, copies = [], []
        for seed in (seed_a, seed_b):
            state, summary = kept.get(seed) or _trained_copy(
                template, recipe, seed, step, store, verbose
            )
            states.append(state)
            copies.append(summary)
        for seed, state, summary in zip((seed_a, seed_b), states, copies, strict=True):
            kept[seed] = (state, summary)
        kept = {seed: v for seed, v in kept.items() if later[seed] > 0}
        if probe is None:
            probe = _clone_with_state(template)
            recipe.compile(probe)
        curve = curve_between_states(
            probe,
            states[0],
            states[1],
            data,
            settings.points,
            bn_data=bn_data,
            bn_batches=settings.bn_reestimate_batches,
            bn_batch_size=recipe.batch_size,
            batch_size=settings.eval_batch_size,
        )
        result = PairResult((seed_a, seed_b), curve, copies)
        if store:
            store.save_pair(result, curve_settings)
        if verbose:
            barriers = ", ".join(
                f"{s} {100 * curve.barrier(s):.2f} pp" for s in curve.errors
            )
            print(
                f"[keras_lottery] pair {i + 1}/{len(pairs)} (seeds {seed_a}, "
                f"{seed_b}): instability {barriers}",
                flush=True,
            )
        results.append(result)
    return InstabilityResult(
        pairs=results,
        threshold=settings.threshold,
        start_step=step,
        settings={**dataclasses.asdict(settings), "seeds": [list(p) for p in pairs]},
    )


def _trained_copy(template, recipe, seed, step, store, verbose):
    if store is not None:
        found = store.copy(seed)
        if found is not None:
            return found
    copy, record = train_copy(template, recipe, seed, start_step=step)
    summary = _copy_summary(seed, record)
    state = capture_state(copy)
    if store is not None:
        store.save_copy(seed, state, summary)
    if verbose:
        final = record.final.get("val_accuracy", record.final.get("accuracy"))
        print(
            f"[keras_lottery] copy (order seed {seed}) trained steps {step}.."
            f"{recipe.total_steps}: {record.steps} steps, {record.wall_time:.1f}s, "
            f"final {'val_' if 'val_accuracy' in record.final else ''}accuracy "
            f"{final:.4f}",
            flush=True,
        )
    del copy
    return state, summary


def _copy_summary(seed: int, record: TrainingRecord) -> dict:
    return {
        "order_seed": seed,
        "steps": record.steps,
        "epochs": record.epochs,
        "wall_time": record.wall_time,
        "final": record.final,
    }


class _Cache:
    """Saved copies and pair curves of one analysis (see :func:`instability`)."""

    def __init__(self, root, template, recipe, step):
        self.root = os.fspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.key = {
            "start_step": step,
            "start": _fingerprint(capture_state(template)),
            "recipe": _recipe_key(recipe),
        }

    def _copy_paths(self, seed):
        base = os.path.join(self.root, f"copy_seed{seed}")
        return base + ".npz", base + ".json"

    def copy(self, seed):
        arrays, meta = self._copy_paths(seed)
        if not os.path.exists(meta):  # written last: a finished copy
            return None
        with open(meta) as handle:
            saved = json.load(handle)
        if saved.get("key") != self.key:
            raise ValueError(
                f"{self.root} holds copies trained from another starting state or "
                f"recipe ({meta}: {saved.get('key')} vs. {self.key}). Use one "
                "cache folder per analysis."
            )
        return load_arrays(arrays), saved["summary"]

    def save_copy(self, seed, state, summary):
        arrays, meta = self._copy_paths(seed)
        save_arrays(arrays, state)
        atomic_write_json(meta, {"key": self.key, "summary": summary})

    def _pair_path(self, a, b):
        return os.path.join(self.root, f"pair_s{a}_s{b}.json")

    def pair(self, a, b, curve_settings):
        path = self._pair_path(a, b)
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            saved = json.load(handle)
        if saved.get("key") != self.key or saved.get("settings") != curve_settings:
            return None  # other settings: re-evaluate from the saved copies
        return PairResult.from_dict(saved["result"])

    def save_pair(self, result, curve_settings):
        atomic_write_json(
            self._pair_path(*result.seeds),
            {"key": self.key, "settings": curve_settings, "result": result.to_dict()},
        )


def _fingerprint(state) -> str:
    digest = hashlib.sha256()
    for array in state:
        digest.update(str((array.shape, array.dtype.str)).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def _recipe_key(recipe) -> str:
    config = recipe.config.to_dict()
    config.pop("stability", None)
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
