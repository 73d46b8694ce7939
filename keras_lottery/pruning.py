"""Mask algebra: read, write, report and compute masks of a model's masked layers.

Masks are addressed by layer name and are numpy ``bool`` arrays shaped like the
layer's kernel. Only kernels are ever pruned: biases, normalization parameters
and every other variable are left alone.

Example:

>>> model = keras_lottery.prunable(model)
>>> prune_magnitude(model, 0.2, scope="layerwise", layer_fractions={"out": 0.1})
>>> print(sparsity_report(model))
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from keras import ops

from keras_lottery import distributed
from keras_lottery.errors import DivergenceError
from keras_lottery.layers.masked import is_masked, validate_mask

SCOPES = ("global", "layerwise")


# --------------------------------------------------------------------------- access


def masked_layers(model) -> list:
    """The masked layers of ``model`` (nested models included), in model order.

    Raises ``ValueError`` if two masked layers share a name, since masks are
    addressed by name.
    """
    found, seen = [], set()
    for layer in _walk(model):
        if is_masked(layer) and id(layer) not in seen:
            seen.add(id(layer))
            found.append(layer)
    names = [layer.name for layer in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Masked layers must have unique names, but {duplicates} appear more "
            "than once (nested models?). Give the layers distinct names."
        )
    return found


def _walk(layer):
    yield layer
    for child in getattr(layer, "_layers", None) or []:
        yield from _walk(child)


def layer_names(model) -> list[str]:
    """Names of the masked layers of ``model``, in model order."""
    return [layer.name for layer in masked_layers(model)]


def expand_patterns(model, patterns: Mapping[str, float], key: str) -> dict:
    """``{fnmatch pattern: value}`` -> ``{masked layer name: value}``; a pattern
    matching no masked layer is a ``ValueError`` naming ``key``.

    >>> expand_patterns(model, {"stage*_conv1": 0.1}, "pruning.layer_fractions")
    """
    names = layer_names(model)
    resolved = {}
    for pattern, value in patterns.items():
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ValueError(
                f"{key} key {pattern!r} matches no masked layer; layers are {names}."
            )
        for name in matched:
            resolved[name] = value
    return resolved


def get_masks(model) -> dict[str, np.ndarray]:
    """``{layer name: bool mask}`` for every masked layer of ``model``."""
    return {layer.name: layer.get_mask() for layer in masked_layers(model)}


def set_masks(model, masks: Mapping[str, np.ndarray]) -> None:
    """Writes ``masks`` (a subset of layers is fine) into ``model``.

    Pruned kernel entries are zeroed, and so are the optimizer's per-weight slots
    for them (momentum, Adam moments, EMA, accumulated gradients), so that with a
    zero gradient they stay exactly zero under further training. Every mask is
    validated before anything is written: on error the model is unchanged.
    """
    by_name = _layers_by_name(model)
    _check_names(masks, by_name)
    checked = {
        name: validate_mask(mask, tuple(by_name[name].raw_kernel.shape), name)
        for name, mask in masks.items()
    }
    # Under a multi-worker strategy the chief's masks are applied everywhere.
    agreed = distributed.from_chief(list(checked.values()))
    checked = dict(zip(checked, agreed, strict=True))
    sync_state(model)
    for name, mask in checked.items():
        by_name[name].set_mask(mask)
    _zero_optimizer_slots(model, {by_name[n]: m for n, m in checked.items()})


def _layers_by_name(model) -> dict:
    layers = masked_layers(model)
    if not layers:
        raise ValueError(
            "The model has no prunable layer. Build it from keras_lottery.layers "
            "(MaskedDense, MaskedConv1D, MaskedConv2D, MaskedDepthwiseConv2D) or "
            "convert it with keras_lottery.prunable(model)."
        )
    return {layer.name: layer for layer in layers}


def check_layer_names(model, names: Iterable[str], what: str = "layer") -> None:
    """A ``ValueError`` naming ``what`` and the names in ``names`` that are not
    masked layers of ``model`` (listing those that are).

    >>> check_layer_names(model, ["output"], "pruning.exclude")
    """
    _check_names(names, _layers_by_name(model), what)


def _check_names(names: Iterable[str], by_name: Mapping, what: str = "") -> None:
    unknown = [n for n in names if n not in by_name]
    if unknown:
        where = f"{what}: " if what else ""
        raise ValueError(
            f"{where}Unknown masked layer name(s) {unknown}. The model's masked "
            f"layers are: {sorted(by_name)}."
        )


def sync_state(model) -> None:
    """Makes the model's variables current before reading or editing them.

    On JAX, ``model.fit`` keeps the live state outside the variables during an
    epoch; a callback that reads weights or edits masks mid-fit must first pull
    it back. A no-op on the other backends.
    """
    sync = getattr(model, "jax_state_sync", None)
    if callable(sync):
        sync()


def _zero_optimizer_slots(model, masks_by_layer: Mapping) -> None:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not getattr(optimizer, "built", False):
        return
    slots = list(optimizer.variables)
    for layer, mask in masks_by_layer.items():
        kernel = layer.raw_kernel
        prefix = kernel.path.replace("/", "_") + "_"
        for slot in slots:
            if slot.name.startswith(prefix) and tuple(slot.shape) == tuple(
                kernel.shape
            ):
                slot.assign(ops.multiply(slot, ops.cast(mask, slot.dtype)))


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class LayerSparsity:
    """Weight counts of one masked layer."""

    name: str
    kind: str
    shape: tuple
    total: int
    remaining: int

    @property
    def fraction_remaining(self) -> float:
        return self.remaining / self.total if self.total else 1.0


@dataclass(frozen=True)
class SparsityReport:
    """Per-layer and overall counts of prunable weights.

    ``str(report)`` is a printable table; ``report.to_dict()`` is JSON-ready.
    """

    layers: tuple[LayerSparsity, ...]

    @property
    def total(self) -> int:
        return sum(layer.total for layer in self.layers)

    @property
    def remaining(self) -> int:
        return sum(layer.remaining for layer in self.layers)

    @property
    def fraction_remaining(self) -> float:
        return self.remaining / self.total if self.total else 1.0

    @property
    def sparsity(self) -> float:
        return 1.0 - self.fraction_remaining

    @property
    def layers_remaining(self) -> dict[str, float]:
        """``{layer name: fraction of its weights remaining}``."""
        return {layer.name: layer.fraction_remaining for layer in self.layers}

    def to_dict(self) -> dict:
        return {
            "layers": [
                {
                    **asdict(layer),
                    "shape": list(layer.shape),
                    "fraction_remaining": layer.fraction_remaining,
                }
                for layer in self.layers
            ],
            "total": self.total,
            "remaining": self.remaining,
            "fraction_remaining": self.fraction_remaining,
        }

    def __str__(self) -> str:
        rows = [
            (
                layer.name,
                layer.kind,
                "x".join(map(str, layer.shape)),
                layer.total,
                layer.remaining,
                layer.fraction_remaining,
            )
            for layer in self.layers
        ]
        rows.append(
            ("TOTAL", "", "", self.total, self.remaining, self.fraction_remaining)
        )
        widths = [max(len(str(r[i])) for r in rows + [_HEADER]) for i in range(3)]
        w0, w1, w2 = widths
        line = f"{{:<{w0}}}  {{:<{w1}}}  {{:<{w2}}}  {{:>12}}  {{:>12}}  {{:>11}}"
        out = [line.format(*_HEADER)]
        out += [line.format(*r[:5], f"{100 * r[5]:.2f}%") for r in rows]
        return "\n".join(out)


_HEADER = ("layer", "type", "shape", "weights", "remaining", "% remaining")


def sparsity_report(model) -> SparsityReport:
    """Counts of total and remaining kernel weights per masked layer and overall."""
    layers = []
    for layer in _layers_by_name(model).values():
        mask = layer.get_mask()
        layers.append(
            LayerSparsity(
                name=layer.name,
                kind=type(layer).__name__,
                shape=tuple(mask.shape),
                total=int(mask.size),
                remaining=int(mask.sum()),
            )
        )
    return SparsityReport(tuple(layers))


# --------------------------------------------------------------------------- magnitude


def magnitude_masks(
    model,
    fraction: float,
    *,
    scope: str = "global",
    layers: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    layer_fractions: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Masks that prune ``fraction`` of the *remaining* weights by magnitude.

    Args:
        model: a model with masked layers.
        fraction: in [0, 1); the share of each pool's surviving weights to prune,
            rounded down (never more than asked).
        scope: ``"global"`` ranks all selected layers together under one
            threshold; ``"layerwise"`` prunes each layer separately.
        layers: names of the layers to prune (default: every masked layer).
        exclude: names never pruned (e.g. the first conv or the classifier).
        layer_fractions: per-layer fractions that override ``fraction``; such
            layers are pruned on their own even under global scope (Frankle &
            Carbin prune the output layer at half rate).

    Returns masks for the selected layers only; nothing is written. Ties in
    magnitude are broken by position (lower flat index is pruned first), so the
    result is deterministic and counts are exact. A string for ``layers`` or
    ``exclude`` means one layer name.
    """
    layers, exclude = _names(layers, "layers"), _names(exclude, "exclude")
    plan = _plan(model, scope, layers, exclude, layer_fractions, fraction, "fraction")

    def count(alive_in_pool: int, total_in_pool: int, value: float) -> int:
        return math.floor(value * alive_in_pool + 1e-9)

    return _magnitude_from_plan(plan, count)


def magnitude_masks_to_density(
    model,
    density: float,
    *,
    scope: str = "global",
    layers: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    layer_densities: Mapping[str, float] | None = None,
    pattern: str | None = None,
) -> dict[str, np.ndarray]:
    """Masks that keep ``round(density * total)`` weights of each pool, by magnitude.

    ``density`` is relative to the *dense* size of the pool (all selected layers
    under global scope, each layer under layerwise scope). Masks only shrink: a
    pool already at or below its target is left as it is. Iterative pruning uses
    this to land on ``(1 - p) ** n`` exactly after ``n`` rounds. ``pattern``
    (``"1x4"``, ``"2:4"``, ...) keeps structured blocks or N:M groups instead of
    single weights (see ``keras_lottery.sparsity_patterns``).
    """
    layers, exclude = _names(layers, "layers"), _names(exclude, "exclude")
    plan = _plan(
        model,
        scope,
        layers,
        exclude,
        layer_densities,
        density,
        "density",
        upper_inclusive=True,
    )

    def count(alive_in_pool: int, total_in_pool: int, value: float) -> int:
        return max(0, alive_in_pool - round(value * total_in_pool))

    return _magnitude_from_plan(plan, count, pattern)


def prune_magnitude(model, fraction: float, **kwargs) -> dict[str, np.ndarray]:
    """Prunes ``fraction`` of the remaining weights by magnitude and writes the masks.

    Takes the arguments of ``magnitude_masks`` and returns the new masks.
    """
    masks = magnitude_masks(model, fraction, **kwargs)
    set_masks(model, masks)
    return masks


def prune_to_density(model, density: float, **kwargs) -> dict[str, np.ndarray]:
    """Prunes by magnitude down to ``density`` of the dense weights; writes the masks.

    Takes the arguments of ``magnitude_masks_to_density``.
    """
    masks = magnitude_masks_to_density(model, density, **kwargs)
    empty = sorted(name for name, mask in masks.items() if mask.size and not mask.any())
    if empty:
        warnings.warn(
            f"Pruning to density {density:.3g} leaves no weight in layer(s) {empty}: "
            "the network is cut in two and can only train to chance accuracy. "
            "Prune less (fewer rounds or a smaller fraction).",
            UserWarning,
            stacklevel=2,
        )
    set_masks(model, masks)
    return masks


def _names(value, what: str):
    """``None``, or a list of layer names: a string is one name (not letters)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise TypeError(
            f"`{what}` must be a layer name or a list of layer names; got {value!r}."
        )
    return list(value)


@dataclass
class _Pool:
    layers: list
    value: float


def _plan(model, scope, layers, exclude, overrides, value, what, upper_inclusive=False):
    by_name = _layers_by_name(model)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}; got {scope!r}.")
    _check_unit_interval(value, what, upper_inclusive)
    selected = list(by_name) if layers is None else list(layers)
    exclude = list(exclude)
    overrides = dict(overrides or {})
    _check_names(selected + exclude + list(overrides), by_name)
    for name, v in overrides.items():
        _check_unit_interval(v, f"{what} for layer '{name}'", upper_inclusive)
    chosen = [by_name[n] for n in selected if n not in exclude]
    if not chosen:
        raise ValueError(
            f"No layer left to prune: selected {selected}, excluded {exclude}."
        )
    pools = [
        _Pool([layer], overrides[layer.name])
        for layer in chosen
        if layer.name in overrides
    ]
    rest = [layer for layer in chosen if layer.name not in overrides]
    if scope == "global" and rest:
        pools.append(_Pool(rest, value))
    else:
        pools += [_Pool([layer], value) for layer in rest]
    return pools


def _check_unit_interval(value, what: str, upper_inclusive: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and 0.0 <= value and (value <= 1.0 if upper_inclusive else value < 1.0)
    if not ok:
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"{what} must be a number in {interval}; got {value!r}.")


def _magnitude_from_plan(pools, count, pattern=None) -> dict[str, np.ndarray]:
    if pattern is not None:
        from keras_lottery.sparsity_patterns import pool_masks

        masks = {}
        for pool in pools:
            masks.update(
                pool_masks(pool.layers, pool.value, count, pattern, _drop_smallest)
            )
        return masks
    masks = {}
    for pool in pools:
        scores, alive, sizes = [], [], []
        for layer in pool.layers:
            mask = layer.get_mask()
            kernel = np.asarray(ops.convert_to_numpy(layer.raw_kernel))
            if not np.all(np.isfinite(kernel[np.asarray(mask, dtype=bool)])):
                # NaN scores would make the cutoff NaN and prune nothing.
                raise DivergenceError(
                    f"Cannot prune layer '{layer.name}' by magnitude: its kernel "
                    "holds non-finite weights (training diverged). Lower the "
                    "learning rate and re-run."
                )
            scores.append(np.abs(kernel).ravel())
            alive.append(mask.ravel())
            sizes.append(mask.size)
        flat_scores = np.concatenate(scores)
        flat_alive = np.concatenate(alive)
        n_alive = int(flat_alive.sum())
        n_prune = count(n_alive, flat_alive.size, pool.value)
        flat_alive = _drop_smallest(flat_scores, flat_alive, n_prune)
        offsets = np.cumsum([0] + sizes)
        for i, layer in enumerate(pool.layers):
            part = flat_alive[offsets[i] : offsets[i + 1]]
            masks[layer.name] = part.reshape(layer.get_mask().shape)
    return masks


def _drop_smallest(scores: np.ndarray, alive: np.ndarray, n: int) -> np.ndarray:
    """Clears the ``n`` alive entries of smallest score; ties go by lower index."""
    alive = alive.copy()
    if n <= 0:
        return alive
    idx = np.flatnonzero(alive)
    values = scores[idx]
    kth = np.partition(values, n - 1)[n - 1]
    below = idx[values < kth]
    ties = idx[values == kth][: n - below.size]
    alive[below] = False
    alive[ties] = False
    return alive


# --------------------------------------------------------------------------- random


def random_masks_like(
    masks: Mapping[str, np.ndarray], seed: int
) -> dict[str, np.ndarray]:
    """Random masks with the same shape and number of survivors per layer.

    The standard random-pruning baseline: sparsity per layer is kept, positions
    are drawn uniformly. Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, mask in masks.items():
        mask = _bool_mask(mask, name)
        flat = np.zeros(mask.size, dtype=bool)
        flat[rng.choice(mask.size, size=int(mask.sum()), replace=False)] = True
        out[name] = flat.reshape(mask.shape)
    return out


def _bool_mask(mask, name: str) -> np.ndarray:
    """``mask`` as bool; a numeric mask must hold only 0 and 1 (a float mask
    of scores or probabilities is an error, not "nonzero = kept")."""
    mask = np.asarray(mask)
    if mask.dtype != bool:
        if not np.issubdtype(mask.dtype, np.number) or not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"Mask of layer {name!r} must be boolean or hold only 0 and 1; got "
                f"{mask.dtype} values such as {np.unique(mask)[:4].tolist()}."
            )
        mask = mask.astype(bool)
    return mask


def prune_random(model, seed: int, reference: Mapping[str, np.ndarray] | None = None):
    """Writes random masks with the per-layer counts of ``reference``
    (default: the model's current masks) and returns them."""
    masks = random_masks_like(
        reference if reference is not None else get_masks(model), seed
    )
    set_masks(model, masks)
    return masks
