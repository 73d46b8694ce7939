"""Copying a model for a tweak: inputs that keep their names, weights by name.

``keras.models.clone_model`` renames a Functional model's input layers
(``input`` -> ``keras_tensor_12``) unless given input tensors; the tweaks promise
the same layer names, so they pass :func:`named_inputs`.

Example:

>>> copy = keras.models.clone_model(model, input_tensors=named_inputs(model))
>>> copy_weights_by_name(model, copy)
"""

from __future__ import annotations

import keras

from keras_lottery.conversion import copy_of


def named_inputs(model):
    """Fresh ``keras.Input`` tensors shaped, typed and named like ``model``'s
    input layers, in the structure of ``model.input`` (``None`` for a
    Sequential model, whose clone keeps its own input).

    >>> [t.name for t in keras.tree.flatten(named_inputs(model))]
    ['input']
    """
    if isinstance(model, keras.Sequential):
        return None
    return keras.tree.map_structure(
        lambda tensor: keras.Input(
            batch_shape=tensor.shape,
            dtype=tensor.dtype,
            name=tensor._keras_history.operation.name,
        ),
        model.input,
    )


def copy_weights_by_name(source, target) -> None:
    """Assigns every variable of each top-level layer of ``source`` to the
    layer of the same name in ``target`` (nested models included, as layers).

    >>> copy_weights_by_name(model, copy)
    """
    for layer in source.layers:
        if layer.weights:
            twin = target.get_layer(layer.name)
            for src, dst in zip(layer.weights, twin.weights, strict=True):
                dst.assign(copy_of(src))
