"""Model registry and the machine-readable description of a network's topology.

Every builder returns a Keras model made of masked layers whose names follow
``stage{s}_block{b}_{layer}``, plus an :class:`Architecture` describing stem,
stages, blocks and head. Elastic depth conversion and pruning scopes read the
description; nothing else should need to know a family's topology.

Example:

>>> model = get("conv4", num_classes=10, input_shape=(32, 32, 3))
>>> describe(model).stages[1].blocks[0].layers
('stage2_block1_conv1',)
>>> pruning_scope(model, "paper")
['stage1_block1_conv1', ..., 'output']
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

import keras


@dataclass(frozen=True)
class Block:
    """A unit that elastic depth conversion may replicate or drop."""

    name: str
    layers: tuple[str, ...]
    downsample: bool = False


@dataclass(frozen=True)
class Stage:
    name: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Architecture:
    """Topology of a built model: stem -> stages -> blocks -> layers -> head.

    ``scopes`` maps a scope name (``"paper"`` plus any family-specific ones) to
    the names of the masked layers that scope prunes. ``options`` are the
    builder arguments, enough to rebuild the same network with :func:`get`.
    """

    family: str
    name: str
    stem: tuple[str, ...]
    stages: tuple[Stage, ...]
    head: tuple[str, ...]
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "family": self.family,
            "name": self.name,
            "stem": list(self.stem),
            "stages": [
                {
                    "name": s.name,
                    "blocks": [
                        {
                            "name": b.name,
                            "layers": list(b.layers),
                            "downsample": b.downsample,
                        }
                        for b in s.blocks
                    ],
                }
                for s in self.stages
            ],
            "head": list(self.head),
            "scopes": {k: list(v) for k, v in self.scopes.items()},
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Architecture:
        """The inverse of :meth:`to_dict` (e.g. a topology a ticket recorded).

        >>> Architecture.from_dict(describe(model).to_dict()) == describe(model)
        True
        """
        stages = tuple(
            Stage(
                s["name"],
                tuple(
                    Block(b["name"], tuple(b["layers"]), bool(b["downsample"]))
                    for b in s["blocks"]
                ),
            )
            for s in data["stages"]
        )
        return cls(
            family=data["family"],
            name=data["name"],
            stem=tuple(data["stem"]),
            stages=stages,
            head=tuple(data["head"]),
            scopes={k: tuple(v) for k, v in data.get("scopes", {}).items()},
            options=dict(data.get("options", {})),
        )


Builder = Callable[..., tuple[keras.Model, Architecture]]
_REGISTRY: dict[str, Builder] = {}
_ATTRIBUTE = "_lottery_architecture"


def register(name: str):
    """Decorator registering ``fn(num_classes, input_shape, **options) -> (model,
    architecture)`` under ``name``."""

    def wrap(fn: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"Model name {name!r} is already registered.")
        _REGISTRY[name] = fn
        return fn

    return wrap


def names() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_REGISTRY)


def builder_options(name: str) -> set[str]:
    """The options the builder of ``name`` takes (``num_classes`` and
    ``input_shape`` included), e.g. to carry a model's options over to another
    depth of its family.

    >>> sorted(builder_options("cifar_resnet_20"))
    ['bn_init', 'input_shape', 'num_classes', 'width']
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Registered models: {names()}.")
    import inspect

    return set(inspect.signature(_REGISTRY[name]).parameters)


def get(name: str, num_classes: int = 10, input_shape: tuple | None = None, **options):
    """Builds the registered model ``name`` (uncompiled, masked layers, masks all ones).

    Raises ``ValueError`` listing the registered names for an unknown ``name``
    and naming the bad option for invalid options.
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, names(), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(f"Unknown model {name!r}.{hint} Registered models: {names()}.")
    if (
        not isinstance(num_classes, int)
        or isinstance(num_classes, bool)
        or num_classes < 1
    ):
        raise ValueError(f"num_classes must be a positive int; got {num_classes!r}.")
    activation = options.pop("classifier_activation", "softmax")
    model, architecture = _REGISTRY[name](
        num_classes=num_classes, input_shape=input_shape, **options
    )
    # Like keras.applications, classifiers end in a softmax unless asked otherwise
    # (classifier_activation=None gives logits, for a from_logits=True loss).
    model.get_layer(architecture.head[-1]).activation = keras.activations.get(
        activation
    )
    architecture = dataclasses.replace(
        architecture,
        options={**architecture.options, "classifier_activation": activation},
    )
    setattr(model, _ATTRIBUTE, architecture)
    return model


def copy_architecture(source, target):
    """Gives ``target`` (a copy of ``source`` with the same layer names, e.g. a
    soft-masked or hardened twin) ``source``'s :class:`Architecture`, if it has
    one, so that :func:`describe` and :func:`pruning_scope` work on it. Returns
    ``target``.

    >>> twin = copy_architecture(model, keras.models.clone_model(model))
    """
    architecture = getattr(source, _ATTRIBUTE, None)
    if architecture is not None:
        setattr(target, _ATTRIBUTE, architecture)
    return target


def describe(model) -> Architecture:
    """The :class:`Architecture` of a model built by :func:`get`."""
    architecture = getattr(model, _ATTRIBUTE, None)
    if architecture is None:
        raise ValueError(
            "This model was not built by keras_lottery.models.get (or is a copy "
            "of one), so its topology is unknown. Rebuild it with "
            "models.get(name, **options)."
        )
    return architecture


def topology(model) -> dict | None:
    """What rebuilding ``model`` with :func:`get` takes, as JSON-able data:
    ``{"architecture": describe(model).to_dict(), "num_classes", "input_shape"}``;
    ``None`` for a model not built by :func:`get`. Tickets record it, so that a
    ticket file alone can be transformed to another depth
    (:mod:`keras_lottery.elastic`).

    >>> topology(get("cifar_resnet_20"))["input_shape"]
    [32, 32, 3]
    """
    architecture = getattr(model, _ATTRIBUTE, None)
    if architecture is None:
        return None
    try:
        input_shape = [int(d) for d in model.input_shape[1:]]
        num_classes = int(model.output_shape[-1])
    except (AttributeError, TypeError, ValueError):  # unusual inputs/outputs
        return None
    return {
        "architecture": architecture.to_dict(),
        "num_classes": num_classes,
        "input_shape": input_shape,
    }


def pruning_scope(model, scope: str = "paper") -> list[str]:
    """Names of the masked layers that ``scope`` prunes for a registry model."""
    architecture = describe(model)
    if scope not in architecture.scopes:
        raise ValueError(
            f"Unknown pruning scope {scope!r} for {architecture.name}; available: "
            f"{sorted(architecture.scopes)}."
        )
    return list(architecture.scopes[scope])


def layers_in_scope(model, layers) -> list[str]:
    """A registry scope name (``"paper"``, ``"all"``, ``"cs"``...; needs a
    model built by :func:`get`) or an explicit list of layer names, as names.

    >>> layers_in_scope(model, "paper")
    """
    if isinstance(layers, str):
        return pruning_scope(model, layers)
    return list(layers)


def count_parameters(model) -> int:
    """Parameters of ``model`` as published sizes count them (PyTorch's
    convention): every variable except masks and batch-norm moving statistics.

    Keras's ``model.count_params()`` counts both of those too.
    """
    from keras_lottery.layers.masked import is_masked

    excluded = set()
    for layer in model._flatten_layers():
        if is_masked(layer):
            excluded.add(id(layer.mask))
        if isinstance(layer, keras.layers.BatchNormalization):
            excluded.update({id(layer.moving_mean), id(layer.moving_variance)})
    return sum(_size(v.shape) for v in model.weights if id(v) not in excluded)


def _size(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out
