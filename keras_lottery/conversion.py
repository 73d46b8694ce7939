"""Turn an ordinary Keras model into one with masked (prunable) layers.

Example:

>>> base = keras.applications.ResNet50(weights=None)
>>> model = keras_lottery.prunable(base)          # every Dense/Conv is masked
>>> model = keras_lottery.prunable(base, layers=lambda l: l.name != "predictions")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import keras
import numpy as np

from keras_lottery.layers.masked import MASKED_TWINS


def prunable(model, layers: Iterable[str] | Callable | None = None):
    """A copy of ``model`` with eligible layers replaced by their masked twins.

    Eligible layers are exact instances of ``Dense``, ``Conv1D``, ``Conv2D`` and
    ``DepthwiseConv2D`` (nested Sequential/Functional models included). Weights
    are copied and masks start all ones, so outputs are identical to the
    original's. If ``model`` is compiled, the copy is compiled with the same
    settings (and a fresh optimizer).

    Args:
        model: a Sequential or Functional model.
        layers: which eligible layers to mask: ``None`` for all, an iterable of
            layer names, or a predicate ``fn(layer) -> bool``.

    Raises:
        ValueError: for a subclassed model, unknown layer names, or names of
            layers that cannot be masked.
    """
    check_graph_model(model, "prunable")
    select = _selector(model, layers)

    def clone(layer):
        twin = MASKED_TWINS.get(type(layer))
        cls = twin if twin is not None and select(layer) else type(layer)
        return cls.from_config(layer.get_config())

    return clone_with_weights(model, clone, _copy_prefix)


def _copy_prefix(source, target) -> None:
    # A masked twin holds the plain layer's variables first, then its mask.
    prefix = target.weights[: len(source.weights)]
    for src, dst in zip(source.weights, prefix, strict=True):
        dst.assign(copy_of(src))


def copy_of(variable):
    """A numpy copy of ``variable``'s value (on JAX, variables must not share a
    buffer: ``fit``/``predict`` donate them)."""
    return np.array(keras.ops.convert_to_numpy(variable))


def clone_with_weights(model, clone_function, copy_weights):
    """``keras.models.clone_model`` (recursive) followed by a per-layer weight copy.

    ``copy_weights(source_layer, target_layer)`` is called for each pair of
    layers that hold variables. The compile settings are carried over.
    """
    copy = keras.models.clone_model(
        model, clone_function=clone_function, recursive=True
    )
    for source, target in zip(_leaf_layers(model), _leaf_layers(copy), strict=True):
        if source.weights:
            copy_weights(source, target)
    if getattr(model, "compiled", False):
        try:
            copy.compile_from_config(model.get_compile_config())
        except Exception as error:  # a custom loss that cannot be re-created
            raise ValueError(
                f"Copied the model but could not re-create its compile settings "
                f"({error}). Compile the returned model yourself."
            ) from error
    return copy


def _leaf_layers(model) -> list:
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(_leaf_layers(layer))
        else:
            out.append(layer)
    return out


def _selector(model, layers):
    if layers is None:
        return lambda layer: True
    if callable(layers):
        return layers
    if isinstance(layers, str):
        raise ValueError(
            f"`layers` must be a list of layer names or a predicate, not the "
            f"string {layers!r}; use [{layers!r}]."
        )
    names = set(layers)
    eligible = {
        layer.name for layer in _leaf_layers(model) if type(layer) in MASKED_TWINS
    }
    unknown = sorted(names - eligible)
    if unknown:
        raise ValueError(
            f"Cannot mask layer(s) {unknown}: not found, or not an exact Dense, "
            f"Conv1D, Conv2D or DepthwiseConv2D. Eligible layers: {sorted(eligible)}."
        )
    return lambda layer: layer.name in names


def check_graph_model(model, what: str) -> None:
    """Raises a ``ValueError`` explaining what to do if ``model`` is subclassed."""
    if not isinstance(model, keras.Model):
        raise ValueError(f"{what} expects a keras.Model; got {type(model).__name__}.")
    if isinstance(model, keras.Sequential) or _is_functional(model):
        return
    raise ValueError(
        f"{what} cannot rewrite the subclassed model {type(model).__name__}: Keras "
        "can only clone Sequential and Functional models. Either build your "
        "subclassed model from keras_lottery.layers (MaskedDense, MaskedConv2D, "
        "...) directly, which needs no conversion, or express it as a Functional "
        "model."
    )


def _is_functional(model) -> bool:
    try:
        from keras.src.models.functional import Functional
    except ImportError:  # pragma: no cover - private path moved
        return hasattr(model, "_nodes_by_depth")
    return isinstance(model, Functional)
