"""CIFAR VGG-11/13/16/19 as in open_lth's ``cifar_vgg``.

Every 3x3 convolution (with bias, as open_lth's ``nn.Conv2d`` default) is followed
by BN and ReLU; 2x2 max-pooling separates the stages; the last stage is followed
by global average pooling (open_lth's ``AvgPool2d(2)`` on the 2x2 map of a 32x32
input) and one dense classifier. Plans (filters per conv, ``|`` = max-pool):

* VGG-11: 64 | 128 | 256 256 | 512 512 | 512 512
* VGG-13: 64 64 | 128 128 | 256 256 | 512 512 | 512 512
* VGG-16: 64 64 | 128 128 | 256 256 256 | 512 512 512 | 512 512 512
* VGG-19: 64 64 | 128 128 | 256 x4 | 512 x4 | 512 x4

Blocks: each conv + its BN is one block (Elastic LTH's unit for VGG), named
``stage{s}_block{b}`` with layers ``stage{s}_block{b}_conv`` / ``_bn``; the pools
``stage{s}_pool`` delimit the stages. ``downsample=True`` marks the blocks whose
input and output shapes differ, i.e. the first conv of a stage that changes the
width (every stage's first conv except stage 5's, which maps 512 to 512
channels). These must stay at a stage's local index 0 when blocks are
replicated or dropped. Spatial downsampling itself happens in the pools, which
have no weights.

Pruning scopes: ``"paper"`` and ``"convs"`` are the convs only (open_lth ignores
``fc.weight`` for VGG); ``"all"`` adds the dense classifier.
"""

from __future__ import annotations

from dataclasses import replace

import keras

from keras_lottery.models._common import (
    BN_INITS,
    batch_norm,
    check_choice,
    check_input_shape,
    classifier,
    conv,
    masked_names,
)
from keras_lottery.models.registry import Architecture, Block, Stage, register

PLANS = {
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256,) * 3, (512,) * 3, (512,) * 3),
    19: ((64, 64), (128, 128), (256,) * 4, (512,) * 4, (512,) * 4),
}


def build_vgg(num_classes, input_shape=None, depth=16, bn_init="uniform"):
    """Builds CIFAR VGG-``depth`` (11, 13, 16 or 19)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth not in PLANS:
        raise ValueError(
            f"VGG depth must be one of {sorted(PLANS)} (vgg11, vgg13, vgg16, "
            f"vgg19); got {depth!r}."
        )
    check_choice(bn_init, BN_INITS, "bn_init")
    plan = PLANS[depth]
    # Four 2x2 pools: the last stage needs at least a 1x1 map.
    shape = check_input_shape(input_shape, (32, 32, 3), f"vgg{depth}", min_size=16)

    inputs = keras.Input(shape, name="input")
    x, stages = inputs, []
    for s, widths in enumerate(plan, start=1):
        if s > 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{s - 1}_pool")(x)
        blocks = []
        for b, filters in enumerate(widths, start=1):
            prefix = f"stage{s}_block{b}"
            downsample = x.shape[-1] != filters
            x = conv(x, filters, 3, 1, prefix + "_conv", use_bias=True)
            x = batch_norm(prefix + "_bn", bn_init)(x)
            x = keras.layers.ReLU(name=prefix + "_relu")(x)
            blocks.append(
                Block(prefix, (prefix + "_conv", prefix + "_bn"), downsample=downsample)
            )
        stages.append(Stage(f"stage{s}", tuple(blocks)))
    outputs = classifier(x, num_classes)
    model = keras.Model(inputs, outputs, name=f"vgg{depth}")

    convs = tuple(n for n in masked_names(model) if n != "output")
    architecture = Architecture(
        family="vgg",
        name=model.name,
        stem=(),
        stages=tuple(stages),
        head=("output",),
        scopes={"paper": convs, "convs": convs, "all": convs + ("output",)},
        options={"depth": depth, "bn_init": bn_init},
    )
    return model, architecture


@register("vgg")
def vgg(num_classes, input_shape=None, depth=16, bn_init="uniform"):
    """CIFAR VGG of depth 11, 13, 16 or 19."""
    return build_vgg(num_classes, input_shape, depth, bn_init)


def _fixed(depth):
    def builder(num_classes, input_shape=None, bn_init="uniform"):
        model, architecture = build_vgg(num_classes, input_shape, depth, bn_init)
        return model, replace(architecture, options={"bn_init": bn_init})

    builder.__name__ = f"vgg{depth}"
    builder.__doc__ = f"CIFAR VGG-{depth}."
    return builder


for _depth in PLANS:
    register(f"vgg{_depth}")(_fixed(_depth))
