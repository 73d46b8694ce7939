"""CIFAR ResNets (He et al., 2016, Sec. 4.2) as in open_lth's ``cifar_resnet_D_W``.

Depth ``D = 6n + 2``: a stem (3x3 conv, BN, ReLU), three stages of ``n`` basic
blocks with ``W``, ``2W`` and ``4W`` filters (``W = width``, 16 by default), global
average pooling and a dense classifier. A basic block is conv3x3-BN-ReLU-conv3x3-BN,
plus the shortcut, then ReLU. The first block of stages 2 and 3 halves the
resolution (stride 2 in ``conv1``) and uses a 1x1 stride-2 projection shortcut
with BN (open_lth's choice; He et al.'s CIFAR models used parameter-free
zero-padding shortcuts, "option A").

Layer names: ``stem_conv``, ``stem_bn``, ``stage{s}_block{b}_conv1`` / ``_bn1`` /
``_conv2`` / ``_bn2`` / ``_shortcut_conv`` / ``_shortcut_bn``, ``output``.

Pruning scopes:

* ``"paper"`` / ``"all"``: every conv (stem and 1x1 shortcuts included) and the
  dense layer, as open_lth prunes ResNet-20.
* ``"cs"``: the 3x3 convs only (stem included; no 1x1 shortcut, no dense), as the
  Continuous Sparsification code masks them.
* ``"convs"``: every conv, no dense (the ToST / "Spending your winning lottery"
  recipe).

>>> model = get("cifar_resnet_20")
>>> count_parameters(model)
274042
"""

from __future__ import annotations

from dataclasses import replace

import keras

from keras_lottery.models._common import (
    BN_INITS,
    batch_norm,
    check_choice,
    check_input_shape,
    check_positive_int,
    classifier,
    conv,
    masked_names,
)
from keras_lottery.models.registry import Architecture, Block, Stage, register

DEPTHS = (20, 32, 44, 56, 110)


def _check_depth(depth) -> int:
    if (
        isinstance(depth, bool)
        or not isinstance(depth, int)
        or depth < 8
        or (depth - 2) % 6
    ):
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, "
            f"110, ...); got {depth!r}."
        )
    return depth


def _basic_block(x, filters, strides, prefix, bn_init):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU. Returns (x, layer names)."""
    shortcut = x
    y = conv(x, filters, 3, strides, prefix + "_conv1")
    y = batch_norm(prefix + "_bn1", bn_init)(y)
    y = keras.layers.ReLU(name=prefix + "_relu1")(y)
    y = conv(y, filters, 3, 1, prefix + "_conv2")
    y = batch_norm(prefix + "_bn2", bn_init)(y)
    names = [prefix + "_conv1", prefix + "_bn1", prefix + "_conv2", prefix + "_bn2"]
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv(x, filters, 1, strides, prefix + "_shortcut_conv")
        shortcut = batch_norm(prefix + "_shortcut_bn", bn_init)(shortcut)
        names += [prefix + "_shortcut_conv", prefix + "_shortcut_bn"]
    y = keras.layers.Add(name=prefix + "_add")([y, shortcut])
    y = keras.layers.ReLU(name=prefix + "_out")(y)
    return y, names


def build_cifar_resnet(
    num_classes, input_shape=None, depth=20, width=16, bn_init="uniform"
):
    """Builds CIFAR ResNet-``depth`` with stage widths ``width * (1, 2, 4)``."""
    depth = _check_depth(depth)
    width = check_positive_int(width, "width")
    check_choice(bn_init, BN_INITS, "bn_init")
    shape = check_input_shape(input_shape, (32, 32, 3), f"cifar_resnet_{depth}")
    n = (depth - 2) // 6

    inputs = keras.Input(shape, name="input")
    x = conv(inputs, width, 3, 1, "stem_conv")
    x = batch_norm("stem_bn", bn_init)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    stages = []
    for s, filters in enumerate((width, 2 * width, 4 * width), start=1):
        blocks = []
        for b in range(1, n + 1):
            strides = 2 if (s > 1 and b == 1) else 1
            prefix = f"stage{s}_block{b}"
            in_channels = x.shape[-1]
            x, names = _basic_block(x, filters, strides, prefix, bn_init)
            downsample = strides != 1 or in_channels != filters
            blocks.append(Block(prefix, tuple(names), downsample=downsample))
        stages.append(Stage(f"stage{s}", tuple(blocks)))
    outputs = classifier(x, num_classes)

    suffix = "" if width == 16 else f"_{width}"
    model = keras.Model(inputs, outputs, name=f"cifar_resnet_{depth}{suffix}")
    convs = tuple(name for name in masked_names(model) if name != "output")
    everything = convs + ("output",)
    architecture = Architecture(
        family="cifar_resnet",
        name=model.name,
        stem=("stem_conv", "stem_bn"),
        stages=tuple(stages),
        head=("output",),
        scopes={
            "paper": everything,
            "all": everything,
            "convs": convs,
            "cs": tuple(n for n in convs if not n.endswith("_shortcut_conv")),
        },
        options={"depth": depth, "width": width, "bn_init": bn_init},
    )
    return model, architecture


@register("cifar_resnet")
def cifar_resnet(num_classes, input_shape=None, depth=20, width=16, bn_init="uniform"):
    """CIFAR ResNet of any depth ``6n + 2`` (open_lth's ResNet-D-W)."""
    return build_cifar_resnet(num_classes, input_shape, depth, width, bn_init)


def _fixed_depth(depth):
    def builder(num_classes, input_shape=None, width=16, bn_init="uniform"):
        model, architecture = build_cifar_resnet(
            num_classes, input_shape, depth, width, bn_init
        )
        options = {"width": width, "bn_init": bn_init}
        return model, replace(architecture, options=options)

    builder.__name__ = f"cifar_resnet_{depth}"
    builder.__doc__ = f"CIFAR ResNet-{depth} ({(depth - 2) // 6} blocks per stage)."
    return builder


for _depth in DEPTHS:
    register(f"cifar_resnet_{_depth}")(_fixed_depth(_depth))
