"""Model state for rewinding: capture every variable, restore it later.

The captured state is *every* model variable, batch-norm moving statistics
included; restoring it is bitwise exact for surviving weights and keeps the
current masks. :class:`keras_lottery.callbacks.RewindCheckpoint` captures it at a
rewind point during ``fit``.

Example:

>>> state = capture_state(model)            # e.g. at step k
>>> model.fit(x, y, epochs=10)
>>> prune_magnitude(model, 0.2)
>>> restore_state(model, state)             # survivors back to their step-k values
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.layers.masked import is_masked
from keras_lottery.pruning import sync_state


def capture_state(model) -> list[np.ndarray]:
    """Copies of every variable of ``model`` (``model.weights`` order)."""
    sync_state(model)
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def restore_state(model, state: list[np.ndarray]) -> None:
    """Writes ``state`` back into every variable except the masks, then re-applies
    the current masks, so surviving weights get their captured values bitwise and
    pruned ones stay zero."""
    weights = model.weights
    if len(weights) != len(state):
        raise ValueError(
            f"The saved state holds {len(state)} variables but the model has "
            f"{len(weights)}: not the same architecture."
        )
    masks = {id(layer.mask) for layer in _masked(model)}
    for variable, value in zip(weights, state, strict=True):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Cannot restore '{variable.path}': saved shape {value.shape}, "
                f"model shape {tuple(variable.shape)}."
            )
        if id(variable) not in masks:
            variable.assign(value)
    for layer in _masked(model):
        layer.set_mask(layer.get_mask())


def _masked(model):
    return [layer for layer in model._flatten_layers() if is_masked(layer)]
