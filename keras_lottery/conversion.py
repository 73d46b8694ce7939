"""Model conversions: plain -> masked (:func:`prunable`), dense -> soft-masked
(:func:`soften`, Continuous Sparsification) and soft-masked -> masked
(:func:`harden`). Every conversion copies the weights, so outputs match.

Example:

>>> base = keras.applications.ResNet50(weights=None)
>>> model = keras_lottery.prunable(base)          # every Dense/Conv is masked
>>> model = keras_lottery.prunable(base, layers=lambda l: l.name != "predictions")
>>> soft = soften(model, ["conv1_conv"])          # soft masks for CS
>>> hard = harden(soft)                           # masked layers, mask s > 0
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping

import keras
import numpy as np

from keras_lottery.layers.masked import (
    MASKED_TWINS,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    is_masked,
)
from keras_lottery.layers.soft import (
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
    check_soft_arguments,
    is_soft_masked,
)
from keras_lottery.models.registry import copy_architecture
from keras_lottery.pruning import set_masks


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

    Layers with a kernel that have no masked twin (``SeparableConv2D``,
    ``Conv2DTranspose``, ``Conv3D``, ``EinsumDense``, ...) stay dense; with
    ``layers=None`` a ``UserWarning`` lists them.

    Raises:
        ValueError: for a subclassed or unbuilt model, unknown layer names, or
            names of layers that cannot be masked.
    """
    check_graph_model(model, "prunable")
    if not model.built:
        raise ValueError(
            f"prunable needs a built model, and {model.name!r} is not built (it "
            "has no weights to copy yet): start it with keras.Input(shape=...) or "
            "call model.build(input_shape) first."
        )
    select = _selector(model, layers)
    if layers is None:
        _warn_unmaskable(model)

    def clone(layer):
        twin = MASKED_TWINS.get(type(layer))
        cls = twin if twin is not None and select(layer) else type(layer)
        return cls.from_config(layer.get_config())

    return clone_with_weights(model, clone, _copy_prefix)


def _warn_unmaskable(model) -> None:
    """Warns about layers holding a kernel that no masked twin replaces."""
    skipped = [
        f"{layer.name} ({type(layer).__name__})"
        for layer in _leaf_layers(model)
        if type(layer) not in MASKED_TWINS
        and not is_masked(layer)
        and any("kernel" in v.path.rsplit("/", 1)[-1] for v in layer.weights)
    ]
    if skipped:
        warnings.warn(
            f"prunable leaves {len(skipped)} layer(s) dense: no masked twin for "
            f"{skipped}. Only Dense, Conv1D, Conv2D and DepthwiseConv2D are masked.",
            UserWarning,
            stacklevel=3,
        )


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


# --------------------------------------------------------------------------- soft masks

#: Layer class -> soft-mask twin (plain Keras layers and masked twins alike).
SOFT_TWINS: dict[type, type] = {
    keras.layers.Dense: SoftMaskedDense,
    keras.layers.Conv2D: SoftMaskedConv2D,
    keras.layers.DepthwiseConv2D: SoftMaskedDepthwiseConv2D,
    MaskedDense: SoftMaskedDense,
    MaskedConv2D: SoftMaskedConv2D,
    MaskedDepthwiseConv2D: SoftMaskedDepthwiseConv2D,
}

#: Soft-mask class -> the masked (hard) twin it binarizes to.
HARD_TWINS: dict[type, type] = {
    SoftMaskedDense: MaskedDense,
    SoftMaskedConv2D: MaskedConv2D,
    SoftMaskedDepthwiseConv2D: MaskedDepthwiseConv2D,
}


_SOFT_KEYS = ("mask_initial_value", "mask_penalty")


def soften(
    model,
    layers: Iterable[str] | None = None,
    *,
    mask_initial_value: float = 0.0,
    penalty: float = 1e-8,
):
    """A copy of ``model`` with ``layers`` replaced by soft-mask twins.

    Eligible layers are ``Dense``, ``Conv2D`` and ``DepthwiseConv2D`` and their
    masked twins; ``layers=None`` takes them all. Kernels and biases are copied
    (so outputs are identical: the soft mask is 1 at start); every other layer
    keeps its class and weights. The source must be dense in those layers.

    Raises ``ValueError`` naming unknown or ineligible layers, or a layer whose
    mask already prunes weights.
    """
    check_graph_model(model, "soften")
    check_soft_arguments(mask_initial_value, penalty)
    leaves = [layer for layer in model._flatten_layers() if not layer._layers]
    eligible = [layer.name for layer in leaves if type(layer) in SOFT_TWINS]
    names = set(eligible if layers is None else layers)
    if isinstance(layers, str):
        raise ValueError(f"`layers` must be a list of names; use [{layers!r}].")
    bad = sorted(names - set(eligible))
    if bad:
        raise ValueError(
            f"Cannot soft-mask layer(s) {bad}: not found, or not a Dense, Conv2D "
            f"or DepthwiseConv2D (or masked twin). Eligible: {sorted(eligible)}."
        )
    if not names:
        raise ValueError("No layer to soft-mask: `layers` is empty.")
    for layer in leaves:
        if layer.name in names and is_masked(layer) and not layer.get_mask().all():
            raise ValueError(
                f"Layer '{layer.name}' already has pruned weights; Continuous "
                "Sparsification starts from a dense network."
            )
    extra = {"mask_initial_value": mask_initial_value, "mask_penalty": penalty}

    def clone(layer):
        if layer.name in names:
            return SOFT_TWINS[type(layer)].from_config({**layer.get_config(), **extra})
        return type(layer).from_config(layer.get_config())

    return copy_architecture(model, clone_with_weights(model, clone, _copy_soft))


def harden(model, masks: Mapping[str, np.ndarray] | None = None):
    """A copy of ``model`` with every soft-mask layer replaced by its masked
    twin, holding the binary mask ``masks[name]`` (default: ``s > 0``) and the
    layer's weights ``w`` (pruned entries zeroed). Other layers keep their
    weights. The copy is compiled like ``model`` (fresh optimizer) if it was.
    """
    soft = [layer for layer in model._flatten_layers() if is_soft_masked(layer)]
    if not soft:
        raise ValueError("The model has no soft-mask layer to binarize.")
    masks = (
        dict(masks)
        if masks is not None
        else {layer.name: layer.hard_mask() for layer in soft}
    )
    names = {layer.name for layer in soft}
    if set(masks) != names:
        raise ValueError(
            f"harden needs one mask per soft-mask layer {sorted(names)}; got masks "
            f"for {sorted(masks)}."
        )

    def clone(layer):
        twin = HARD_TWINS.get(type(layer))
        if twin is None:
            return type(layer).from_config(layer.get_config())
        config = {k: v for k, v in layer.get_config().items() if k not in _SOFT_KEYS}
        return twin.from_config(config)

    hard = copy_architecture(model, clone_with_weights(model, clone, _copy_soft))
    set_masks(hard, masks)
    return hard


def _copy_soft(source, target) -> None:
    """Copies a layer's weights across soft/masked/plain twins: the leading
    kernel (and bias) always; everything else only between same-class layers."""
    if type(source) is type(target):
        for src, dst in zip(source.weights, target.weights, strict=True):
            dst.assign(copy_of(src))
        return
    kernel = source.raw_kernel if hasattr(source, "raw_kernel") else source.kernel
    target_kernel = target.raw_kernel if hasattr(target, "raw_kernel") else None
    target_kernel = target_kernel if target_kernel is not None else target.kernel
    target_kernel.assign(copy_of(kernel))
    if getattr(source, "bias", None) is not None:
        target.bias.assign(copy_of(source.bias))
