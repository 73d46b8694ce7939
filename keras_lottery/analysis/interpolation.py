"""Linear interpolation between two networks with the same masks.

The path ``(1 - a) * W1 + a * W2`` for ``a`` in [0, 1] (Frankle, Dziugaite,
Roy & Carbin, "Linear Mode Connectivity and the Lottery Ticket Hypothesis",
2020): its error barrier, ``max_a error(a) - mean(error(0), error(1))``, is the
*instability* that :mod:`keras_lottery.analysis.instability` measures between
copies trained from one state.

- :func:`check_compatible` / :func:`check_states`: same architecture and masks,
  or a clear error;
- :func:`interpolate_states` / :func:`write_interpolation`: every variable
  (batch-norm moving statistics included) is interpolated; masks are shared and
  re-applied, so pruned weights stay exactly zero along the path;
- :func:`reestimate_batch_norm`: optional recomputation of batch-norm statistics
  at each point;
- :func:`interpolation_curve` / :func:`curve_between_states`: errors (and
  losses) along the path on named data, as an :class:`InterpolationCurve`.

Nothing is written to disk.

Example:

>>> curve = interpolation_curve(model_a, model_b, {"test": (x_test, y_test)})
>>> curve.barrier("test"), curve.endpoint_errors("test")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery.rewind import capture_state, restore_state
from keras_lottery.training import evaluate

__all__ = [
    "InterpolationCurve",
    "alphas",
    "batch_norm_layers",
    "check_compatible",
    "check_states",
    "curve_between_states",
    "interpolate_states",
    "interpolation_curve",
    "reestimate_batch_norm",
    "write_interpolation",
]

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
