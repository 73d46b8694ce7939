import math

import keras
import numpy as np
import pytest

from keras_lottery import models, pruning
from keras_lottery.errors import ConfigError
from keras_lottery.layers import MaskedDense
from keras_lottery.tweaks.activations import (
    SOFT_ACTIVATIONS,
    pswish,
    with_soft_activations,
)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


EXPECTED = {
    "swish": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "softplus": _softplus,
    "gelu": np.vectorize(lambda v: 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))),
    "pswish": lambda x: x * _sigmoid(2.0 * x),
}


def _relu_net():
    """Every kind of ReLU: a masked layer's argument, a ReLU layer, an
    Activation("relu") layer; plus a ReLU6, which stays."""
    inputs = keras.Input((3,))
    x = MaskedDense(4, activation="relu", name="fc1")(inputs)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Dense(4, name="fc2")(x)
    x = keras.layers.Activation("relu", name="act")(x)
    x = keras.layers.ReLU(6.0, name="relu6")(x)
    outputs = keras.layers.Dense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("fc1").set_mask([[1, 0, 1, 1], [0, 1, 1, 0], [1, 1, 0, 1]])
    return model


def _forward(model, x, f):
    """The network of :func:`_relu_net` in numpy, with ``f`` for every ReLU."""
    w1, b1, m1 = (np.asarray(v) for v in model.get_layer("fc1").weights)
    w2, b2 = (np.asarray(v) for v in model.get_layer("fc2").weights)
    w3, b3 = (np.asarray(v) for v in model.get_layer("out").weights)
    h = f(f(x @ (w1 * m1) + b1))
    h = np.minimum(np.maximum(f(h @ w2 + b2), 0.0), 6.0)
    return h @ w3 + b3


# On JAX (CI's second lane) only the two functions this library adds or
# registers; the others are Keras's own, tested there on every backend.
ON_EVERY_BACKEND = ("pswish", "mish")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.backend_neutral)
        if name in ON_EVERY_BACKEND
        else name
        for name in SOFT_ACTIVATIONS
    ],
)
def test_swap_keeps_weights_and_changes_outputs_as_the_function_predicts(name):
    model = _relu_net()
    x = np.random.default_rng(0).normal(size=(5, 3)).astype("float32")
    soft = with_soft_activations(model, name)

    assert [layer.name for layer in soft.layers] == [
        layer.name for layer in model.layers
    ]
    for old, new in zip(model.weights, soft.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(new), np.asarray(old))
    assert soft.get_layer("relu6").max_value == 6.0  # ReLU6 is not a ReLU here
    relu = _forward(model, x, lambda v: np.maximum(v, 0.0))
    np.testing.assert_allclose(np.asarray(model(x)), relu, rtol=1e-5, atol=1e-5)
    expected = _forward(model, x, EXPECTED[name])
    np.testing.assert_allclose(np.asarray(soft(x)), expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(expected, relu)


def test_zoo_model_keeps_masks_and_topology():
    model = models.get(
        "lenet_300_100", input_shape=(4, 4, 1), hidden=[6, 4], num_classes=2
    )
    pruning.prune_magnitude(model, 0.5)
    soft = with_soft_activations(model)

    assert models.describe(soft) == models.describe(model)
    for name, mask in pruning.get_masks(model).items():
        np.testing.assert_array_equal(pruning.get_masks(soft)[name], mask)
    assert soft.get_layer("stage1_block1_fc").activation is keras.activations.silu
    assert soft.get_layer("output").activation is keras.activations.softmax


@pytest.mark.parametrize(
    "name", [pytest.param("pswish", marks=pytest.mark.backend_neutral), "mish"]
)
def test_keras_file_round_trip(tmp_path, name):
    model = with_soft_activations(_relu_net(), name)
    x = np.random.default_rng(1).normal(size=(4, 3)).astype("float32")
    path = str(tmp_path / "soft.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), 1e-6)
    np.testing.assert_array_equal(
        np.asarray(loaded.get_layer("fc1").mask),
        np.asarray(model.get_layer("fc1").mask),
    )


@pytest.mark.backend_neutral
def test_pswish_value():
    x = np.array([-1.0, 0.5, 2.0], "float32")
    np.testing.assert_allclose(np.asarray(pswish(x)), x / (1 + np.exp(-2 * x)), 1e-6)


def test_unknown_activation_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="allowed: swish, mish, elu, softplus"):
        with_soft_activations(_relu_net(), "tanh")


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, activation="relu")

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ConfigError, match="subclassed"):
        with_soft_activations(net)
