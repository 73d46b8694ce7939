"""The networks of Frankle & Carbin (2019): LeNet-300-100 and Conv-2/4/6.

Conv-N: N/2 stages of two 3x3 convolutions (64, 128, 256 filters, ReLU, same
padding) each followed by 2x2 max-pooling, then dense 256-256-classes. LeNet-300-100
is dense 300-100-classes on the flattened input. All weights use Glorot normal
initialization and zero biases, as in the paper.
"""

from __future__ import annotations

import keras

from keras_lottery.layers import MaskedConv2D, MaskedDense
from keras_lottery.models.registry import Architecture, Block, Stage, register

INIT = "glorot_normal"


def _check_shape(input_shape, default, rank, name):
    shape = tuple(input_shape) if input_shape is not None else default
    if len(shape) != rank or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(
            f"{name} needs an input_shape of {rank} positive ints like {default}; "
            f"got {input_shape!r}."
        )
    return shape


@register("lenet_300_100")
def lenet_300_100(num_classes, input_shape=None, hidden=(300, 100)):
    """Fully connected 784-300-100-10 (for MNIST-shaped input)."""
    shape = input_shape if input_shape is not None else (28, 28, 1)
    shape = tuple(shape)
    inputs = keras.Input(shape)
    x = keras.layers.Flatten(name="flatten")(inputs)
    blocks = []
    for i, units in enumerate(hidden, start=1):
        name = f"stage1_block{i}_fc"
        x = MaskedDense(units, activation="relu", kernel_initializer=INIT, name=name)(x)
        blocks.append(Block(f"stage1_block{i}", (name,)))
    outputs = MaskedDense(
        num_classes,
        kernel_initializer=INIT,
        name="output",
    )(x)
    model = keras.Model(inputs, outputs, name="lenet_" + "_".join(map(str, hidden)))
    layers = [b.layers[0] for b in blocks] + ["output"]
    architecture = Architecture(
        family="lenet",
        name=model.name,
        stem=(),
        head=("output",),
        stages=(Stage("stage1", tuple(blocks)),),
        scopes={"paper": tuple(layers), "all": tuple(layers)},
        options={"hidden": list(hidden)},
    )
    return model, architecture


def _conv_net(depth, num_classes, input_shape, dense):
    shape = _check_shape(input_shape, (32, 32, 3), 3, f"conv{depth}")
    inputs = keras.Input(shape)
    x, stages, convs = inputs, [], []
    for s, filters in enumerate((64, 128, 256)[: depth // 2], start=1):
        blocks = []
        for b in (1, 2):
            name = f"stage{s}_block{b}_conv1"
            x = MaskedConv2D(
                filters,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=INIT,
                name=name,
            )(x)
            blocks.append(Block(f"stage{s}_block{b}", (name,), downsample=False))
            convs.append(name)
        x = keras.layers.MaxPooling2D(2, name=f"stage{s}_pool")(x)
        stages.append(Stage(f"stage{s}", tuple(blocks)))
    x = keras.layers.Flatten(name="flatten")(x)
    head = []
    for i, units in enumerate(dense, start=1):
        x = MaskedDense(
            units, activation="relu", kernel_initializer=INIT, name=f"fc{i}"
        )(x)
        head.append(f"fc{i}")
    outputs = MaskedDense(
        num_classes,
        kernel_initializer=INIT,
        name="output",
    )(x)
    head.append("output")
    model = keras.Model(inputs, outputs, name=f"conv{depth}")
    everything = tuple(convs + head)
    architecture = Architecture(
        family="conv",
        name=model.name,
        stem=(),
        stages=tuple(stages),
        head=tuple(head),
        scopes={"paper": everything, "all": everything, "convs": tuple(convs)},
        options={"dense": list(dense)},
    )
    return model, architecture


@register("conv2")
def conv2(num_classes, input_shape=None, dense=(256, 256)):
    """Conv-2: conv64, conv64, pool, dense 256, 256, classes."""
    return _conv_net(2, num_classes, input_shape, dense)


@register("conv4")
def conv4(num_classes, input_shape=None, dense=(256, 256)):
    """Conv-4: Conv-2 plus conv128, conv128, pool."""
    return _conv_net(4, num_classes, input_shape, dense)


@register("conv6")
def conv6(num_classes, input_shape=None, dense=(256, 256)):
    """Conv-6: Conv-4 plus conv256, conv256, pool."""
    return _conv_net(6, num_classes, input_shape, dense)
