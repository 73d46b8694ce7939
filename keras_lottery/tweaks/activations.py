"""Soft activations: a copy of a model with every ReLU replaced by a smooth one.

Jaiswal et al. (2021) retrain a ticket with the ReLUs of its network swapped
for a smooth activation (ToST's ``--activation``). :func:`with_soft_activations`
does that to any Functional or Sequential model: ``keras.layers.ReLU`` layers
(plain ones: no ``max_value``, ``negative_slope`` or ``threshold``),
``Activation("relu")`` layers and the ``activation="relu"`` argument of any layer
(masked layers included). Layer names, weights and masks are copied unchanged;
only the activation functions differ.

Example:

>>> model = keras_lottery.models.get("cifar_resnet_20")
>>> soft = with_soft_activations(model, "swish")
>>> soft.get_layer("stem_relu").activation.__name__
'silu'
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lottery.conversion import check_graph_model
from keras_lottery.errors import ConfigError
from keras_lottery.layers._base import PACKAGE
from keras_lottery.models.registry import copy_architecture
from keras_lottery.tweaks._clone import copy_weights_by_name, named_inputs


@keras.saving.register_keras_serializable(package=PACKAGE, name="pswish")
def pswish(x):
    """``x * sigmoid(2x)``, the "parametric swish" of ToST with beta = 2.

    >>> float(pswish(keras.ops.convert_to_tensor(0.0)))
    0.0
    """
    return ops.multiply(x, ops.sigmoid(ops.multiply(x, 2.0)))


#: Name -> activation function. swish is Keras's ``silu`` (x * sigmoid(x));
#: gelu is the exact (erf) form, like PyTorch's ``nn.GELU()`` default.
_FUNCTIONS = {
    "swish": keras.activations.silu,
    "mish": keras.activations.mish,
    "elu": keras.activations.elu,
    "softplus": keras.activations.softplus,
    "gelu": keras.activations.gelu,
    "pswish": pswish,
}

#: The activations :func:`with_soft_activations` accepts.
SOFT_ACTIVATIONS = tuple(_FUNCTIONS)


def soft_activation(name: str):
    """The activation function called ``name`` (one of :data:`SOFT_ACTIVATIONS`);
    another name raises :class:`~keras_lottery.errors.ConfigError` listing them.

    >>> soft_activation("pswish") is pswish
    True
    """
    if name not in _FUNCTIONS:
        raise ConfigError(
            f"Unknown soft activation {name!r}; allowed: {', '.join(SOFT_ACTIVATIONS)}."
        )
    return _FUNCTIONS[name]


def with_soft_activations(model, activation: str = "swish") -> keras.Model:
    """A new model like ``model`` with every ReLU replaced by ``activation``.

    ``model`` must be Functional or Sequential (nested ones included); a
    subclassed model raises :class:`~keras_lottery.errors.ConfigError`, as does an
    ``activation`` outside :data:`SOFT_ACTIVATIONS`. ReLU layers become
    ``Activation`` layers of the same name; layers with ``activation="relu"``
    get the new function. Weights and masks are copied, and a registry model's
    topology (:func:`keras_lottery.models.describe`) carries over; the copy is
    not compiled. ReLU6 and leaky ReLUs are left alone (they are not ReLUs in
    ToST's sense: it replaces ``nn.ReLU`` only).

    Example:

    >>> soft = with_soft_activations(model, "mish")
    >>> soft.compile("sgd", "sparse_categorical_crossentropy")
    >>> soft.fit(x, y)
    """
    function = soft_activation(activation)
    try:
        check_graph_model(model, "with_soft_activations")
    except ValueError as error:
        raise ConfigError(str(error)) from error

    def clone(layer):
        if _is_plain_relu_layer(layer):
            return keras.layers.Activation(
                function, name=layer.name, dtype=layer.dtype_policy
            )
        config = layer.get_config()
        if getattr(layer, "activation", None) is keras.activations.relu:
            config["activation"] = keras.activations.serialize(function)
        return type(layer).from_config(config)

    copy = keras.models.clone_model(
        model, input_tensors=named_inputs(model), clone_function=clone, recursive=True
    )
    copy_weights_by_name(model, copy)
    return copy_architecture(model, copy)


def _is_plain_relu_layer(layer) -> bool:
    if type(layer) is not keras.layers.ReLU:
        return False
    return (
        layer.max_value is None
        and float(layer.negative_slope) == 0.0
        and float(layer.threshold) == 0.0
    )
