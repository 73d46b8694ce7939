"""Small models and data shared by the tests."""

import keras
import numpy as np

from keras_lottery.layers import MaskedConv2D, MaskedDense


def mlp(inputs=8, hidden=16, outputs=3, name_prefix=""):
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            MaskedDense(hidden, activation="relu", name=f"{name_prefix}fc1"),
            MaskedDense(hidden, activation="relu", name=f"{name_prefix}fc2"),
            MaskedDense(outputs, name=f"{name_prefix}out"),
        ]
    )


def small_convnet():
    inputs = keras.Input((8, 8, 3))
    x = MaskedConv2D(4, 3, padding="same", name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = MaskedConv2D(6, 3, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = MaskedDense(3, name="out")(x)
    return keras.Model(inputs, outputs)


def classification_data(n=96, inputs=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, inputs)).astype("float32")
    w = rng.normal(size=(inputs, classes))
    y = np.argmax(x @ w, axis=1).astype("int32")
    return x, y


def images(n=48, seed=0):
    """``n`` random 8x8x3 images in 3 classes that depend on two channel means
    (what :func:`small_convnet` takes)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32") + (
        x[..., 1].mean(axis=(1, 2)) > 0
    ).astype("int32")
    return x, y


def soft_convnet(s0=0.0, penalty=1e-3, seed=0):
    """:func:`small_convnet` with soft masks on ``conv1`` and ``conv2``,
    compiled with SGD (momentum 0.9) and accuracy."""
    from keras_lottery.conversion import soften

    keras.utils.set_random_seed(seed)
    soft = soften(
        small_convnet(), ["conv1", "conv2"], mask_initial_value=s0, penalty=penalty
    )
    soft.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return soft


def to_numpy(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable))


def weights_by_path(model):
    """``{variable.path: value}`` copies of every variable of ``model``."""
    return {v.path: to_numpy(v).copy() for v in model.weights}
