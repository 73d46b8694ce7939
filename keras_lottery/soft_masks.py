"""The state of a soft-masked model (Continuous Sparsification): its soft-mask
layers, hard masks from the logits, the logit reset between rounds, the
temperature.

Example:

>>> masks = binarize(soft)                         # {layer: s > 0}
>>> exact = binarize(soft, target_sparsity=0.9)    # top 10% of the logits
>>> reset_logits(soft, "paper")                     # between search rounds
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from keras_lottery.conversion import copy_of
from keras_lottery.layers.soft import is_soft_masked
from keras_lottery.pruning import sync_state
from keras_lottery.rewind import restore_state

#: How logits are reset between search rounds (see :func:`reset_logits`).
LOGIT_RESETS = ("paper", "code")
#: The name of the soft-mask logit variables (exclude it from weight decay).
LOGITS = "mask_logits"


def soft_layers(model) -> list:
    """The soft-mask layers of ``model`` (nested models included), in order."""
    return [layer for layer in model._flatten_layers() if is_soft_masked(layer)]


def binarize(model, target_sparsity: float | None = None) -> dict[str, np.ndarray]:
    """Hard masks of the soft-mask layers: ``s > 0``, or, with
    ``target_sparsity``, the ``round((1 - target) * n)`` largest logits over all
    soft layers together (ties broken by position, earlier kept), so the
    sparsity is exact."""
    layers = soft_layers(model)
    if not layers:
        raise ValueError("The model has no soft-mask layer to binarize.")
    sync_state(model)
    if target_sparsity is None:
        return {layer.name: layer.hard_mask() for layer in layers}
    _check_target(target_sparsity)
    logits = [np.asarray(ops.convert_to_numpy(lyr.mask_logits)) for lyr in layers]
    flat = np.concatenate([x.ravel() for x in logits])
    keep = int(round((1.0 - target_sparsity) * flat.size))
    alive = np.zeros(flat.size, dtype=bool)
    alive[np.argsort(-flat, kind="stable")[:keep]] = True
    masks, offset = {}, 0
    for layer, x in zip(layers, logits, strict=True):
        masks[layer.name] = alive[offset : offset + x.size].reshape(x.shape)
        offset += x.size
    return masks


def _check_target(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"target_sparsity must be a number; got {value!r}.")
    if not 0 <= value < 1:
        raise ValueError(f"target_sparsity must be in [0, 1); got {value!r}.")


def remaining_fraction(model) -> float:
    """Share of the soft-masked weights with ``s > 0``."""
    masks = binarize(model)
    return sum(int(m.sum()) for m in masks.values()) / sum(
        m.size for m in masks.values()
    )


def reset_logits(model, rule: str = "paper") -> None:
    """Between rounds: ``s <- min(beta * s, s0)`` (``"paper"``) or
    ``min(s, s0)`` (``"code"``, the authors' implementation)."""
    if rule not in LOGIT_RESETS:
        raise ValueError(f"rule must be one of {LOGIT_RESETS}; got {rule!r}.")
    sync_state(model)
    for layer in soft_layers(model):
        logits = ops.convert_to_tensor(layer.mask_logits)
        if rule == "paper":
            logits = ops.multiply(ops.cast(layer.temperature, logits.dtype), logits)
        layer.mask_logits.assign(ops.minimum(logits, layer.mask_initial_value))


def rewind_weights(model, state) -> None:
    """Restores ``state`` (from ``rewind.capture_state``) into every variable
    except the soft-mask layers' logits, temperature and penalty, which keep
    their current values (the authors' ``rewind_weights``)."""
    sync_state(model)
    keep = [
        (variable, copy_of(variable))
        for layer in soft_layers(model)
        for variable in (layer.mask_logits, layer.temperature, layer.penalty)
    ]
    restore_state(model, state)
    for variable, value in keep:
        variable.assign(value)


def set_temperature(model, beta: float) -> None:
    """Sets beta of every soft-mask layer of ``model``."""
    for layer in soft_layers(model):
        layer.set_temperature(beta)


def check_temperature(value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"final_temperature must be a number > 0; got {value!r}.")
