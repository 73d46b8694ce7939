"""ImageNet ResNets (He et al., 2016) laid out like torchvision's / open_lth's.

Stem: 7x7 stride-2 conv (64 filters), BN, ReLU, 3x3 stride-2 max-pool. Four stages
with ``width * (1, 2, 4, 8)`` filters (``width = 64``); the first block of stages
2-4 has stride 2. Blocks are *basic* (conv3x3-BN-ReLU-conv3x3-BN, expansion 1) or
*bottleneck* (conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, expansion 4, stride on
the 3x3 conv as in torchvision, "ResNet v1.5"). A block whose input and output
shapes differ gets a 1x1 projection shortcut with BN. Global average pooling and a
dense classifier end the network.

Registered: ``resnet18`` (basic, 2-2-2-2), ``resnet26`` (basic, 2-3-4-3, the
Elastic LTH ResNet-26), ``resnet34`` (basic, 3-4-6-3), ``resnet50`` (bottleneck,
3-4-6-3) and the generic ``resnet`` (``blocks=...``, ``block="basic"`` or
``"bottleneck"``).

Layer names: ``stem_conv``, ``stem_bn``, ``stage{s}_block{b}_conv{1,2[,3]}`` /
``_bn{...}`` / ``_shortcut_conv`` / ``_shortcut_bn``, ``output``.

Pruning scopes: ``"paper"`` and ``"all"`` are every conv and the dense layer
(open_lth's default for its ImageNet ResNets, used by the LMC and Elastic LTH
papers); ``"convs"`` leaves the dense layer dense.
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
    max_pool,
)
from keras_lottery.models.registry import Architecture, Block, Stage, register

BLOCK_TYPES = ("basic", "bottleneck")
EXPANSION = {"basic": 1, "bottleneck": 4}
CONVS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


def _basic(x, filters, strides, prefix, bn_init):
    y = conv(x, filters, 3, strides, prefix + "_conv1")
    y = batch_norm(prefix + "_bn1", bn_init)(y)
    y = keras.layers.ReLU(name=prefix + "_relu1")(y)
    y = conv(y, filters, 3, 1, prefix + "_conv2")
    y = batch_norm(prefix + "_bn2", bn_init)(y)
    return y, [f"{prefix}_{k}{i}" for i in (1, 2) for k in ("conv", "bn")]


def _bottleneck(x, filters, strides, prefix, bn_init):
    y = conv(x, filters, 1, 1, prefix + "_conv1")
    y = batch_norm(prefix + "_bn1", bn_init)(y)
    y = keras.layers.ReLU(name=prefix + "_relu1")(y)
    y = conv(y, filters, 3, strides, prefix + "_conv2")
    y = batch_norm(prefix + "_bn2", bn_init)(y)
    y = keras.layers.ReLU(name=prefix + "_relu2")(y)
    y = conv(y, filters * EXPANSION["bottleneck"], 1, 1, prefix + "_conv3")
    y = batch_norm(prefix + "_bn3", bn_init)(y)
    return y, [f"{prefix}_{k}{i}" for i in (1, 2, 3) for k in ("conv", "bn")]


def _check_blocks(blocks) -> tuple[int, ...]:
    try:
        counts = tuple(blocks)
    except TypeError:
        counts = ()
    if len(counts) != 4 or not all(
        isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in counts
    ):
        raise ValueError(
            "blocks must be four positive ints (blocks per stage), e.g. (2, 2, 2, 2) "
            f"for ResNet-18 or (3, 4, 6, 3) for ResNet-34/50; got {blocks!r}."
        )
    return counts


def build_resnet(
    num_classes,
    input_shape=None,
    blocks=(2, 2, 2, 2),
    block="basic",
    width=64,
    bn_init="uniform",
):
    """Builds an ImageNet-style ResNet with ``blocks[s]`` blocks in stage ``s+1``."""
    counts = _check_blocks(blocks)
    check_choice(block, BLOCK_TYPES, "block")
    width = check_positive_int(width, "width")
    check_choice(bn_init, BN_INITS, "bn_init")
    depth = CONVS_PER_BLOCK[block] * sum(counts) + 2
    name = f"resnet{depth}" + ("" if width == 64 else f"_w{width}")
    shape = check_input_shape(input_shape, (224, 224, 3), name)
    make_block = _basic if block == "basic" else _bottleneck

    inputs = keras.Input(shape, name="input")
    x = conv(inputs, width, 7, 2, "stem_conv")
    x = batch_norm("stem_bn", bn_init)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = max_pool(x, 3, 2, "stem_pool")
    stages = []
    for s, n in enumerate(counts, start=1):
        filters = width * 2 ** (s - 1)
        out_channels = filters * EXPANSION[block]
        stage_blocks = []
        for b in range(1, n + 1):
            prefix = f"stage{s}_block{b}"
            strides = 2 if (s > 1 and b == 1) else 1
            downsample = strides != 1 or x.shape[-1] != out_channels
            y, names = make_block(x, filters, strides, prefix, bn_init)
            shortcut = x
            if downsample:
                shortcut = conv(x, out_channels, 1, strides, prefix + "_shortcut_conv")
                shortcut = batch_norm(prefix + "_shortcut_bn", bn_init)(shortcut)
                names += [prefix + "_shortcut_conv", prefix + "_shortcut_bn"]
            x = keras.layers.Add(name=prefix + "_add")([y, shortcut])
            x = keras.layers.ReLU(name=prefix + "_out")(x)
            stage_blocks.append(Block(prefix, tuple(names), downsample=downsample))
        stages.append(Stage(f"stage{s}", tuple(stage_blocks)))
    outputs = classifier(x, num_classes)
    model = keras.Model(inputs, outputs, name=name)

    convs = tuple(n for n in masked_names(model) if n != "output")
    architecture = Architecture(
        family="resnet",
        name=name,
        stem=("stem_conv", "stem_bn"),
        stages=tuple(stages),
        head=("output",),
        scopes={
            "paper": convs + ("output",),
            "all": convs + ("output",),
            "convs": convs,
        },
        options={
            "blocks": list(counts),
            "block": block,
            "width": width,
            "bn_init": bn_init,
        },
    )
    return model, architecture


@register("resnet")
def resnet(
    num_classes,
    input_shape=None,
    blocks=(2, 2, 2, 2),
    block="basic",
    width=64,
    bn_init="uniform",
):
    """Generic ImageNet ResNet: four stages of ``blocks`` basic/bottleneck blocks."""
    return build_resnet(num_classes, input_shape, blocks, block, width, bn_init)


def _fixed(name, blocks, block):
    def builder(num_classes, input_shape=None, width=64, bn_init="uniform"):
        model, architecture = build_resnet(
            num_classes, input_shape, blocks, block, width, bn_init
        )
        options = {"width": width, "bn_init": bn_init}
        return model, replace(architecture, options=options)

    builder.__name__ = name
    builder.__doc__ = f"{name}: {block} blocks {blocks}."
    return builder


PRESETS = {
    "resnet18": ((2, 2, 2, 2), "basic"),
    "resnet26": ((2, 3, 4, 3), "basic"),
    "resnet34": ((3, 4, 6, 3), "basic"),
    "resnet50": ((3, 4, 6, 3), "bottleneck"),
}

for _name, (_blocks, _block) in PRESETS.items():
    register(_name)(_fixed(_name, _blocks, _block))
