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
