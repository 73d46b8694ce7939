"""MobileNetV1 (Howard et al., 2017) and MobileNetV2 (Sandler et al., 2018).

Depthwise convs are :class:`MaskedDepthwiseConv2D` (depth multiplier 1, no bias),
pointwise/expansion/projection convs :class:`MaskedConv2D` (no bias); every conv
is followed by BN.

**MobileNetV1** (``mobilenet_v1``): stem 3x3 conv with ``32 * alpha`` filters,
then 13 depthwise-separable blocks (depthwise 3x3-BN-ReLU, pointwise 1x1-BN-ReLU)
with 64, 128, 128, 256, 256, 512 x 6, 1024, 1024 filters (times ``alpha``,
truncated to an int as Keras does), global average pooling, dense classifier.
``stem="imagenet"`` uses a stride-2 stem (the paper's network, 224x224 input by
default); ``stem="cifar"`` a stride-1 stem (the CIFAR MobileNet of Elastic LTH /
kuangliu's pytorch-cifar, 32x32 by default). Activations are ReLU, as in the
paper (Keras's application uses ReLU6). Stages are delimited by the stride-2
blocks: stage1 = [64], stage2 = [128/2, 128], stage3 = [256/2, 256],
stage4 = [512/2, 512 x 5], stage5 = [1024/2, 1024]; the five repeated 512-filter
blocks are the ones Elastic LTH replicates or drops.

**MobileNetV2** (``mobilenet_v2``): torchvision's layout. Stem 3x3 stride-2 conv
(32 filters), inverted-residual stages ``(t, c, n, s)`` = (1,16,1,1), (6,24,2,2),
(6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1), a 1x1 conv to 1280
filters, global average pooling and a dense classifier; ReLU6 everywhere except
after the linear projection; channel counts times ``alpha`` rounded to a multiple
of 8 (torchvision's ``_make_divisible``). ``stem="cifar"`` sets the stem's stride
and the second stage's stride to 1 (kuangliu's CIFAR variant). Each ``(t, c, n,
s)`` row is a stage; a block has ``expand_conv`` (absent when t = 1),
``dw_conv``, ``project_conv`` and their BNs, and a residual connection when its
input and output shapes agree (otherwise ``downsample=True``). No dropout before
the classifier (torchvision uses 0.2).

Pruning scopes (no paper fixes one for MobileNets; see docs/models.md):

* ``"paper"`` / ``"all"``: every conv (stem, depthwise, pointwise, V2's head
  conv) and the dense layer: open_lth's default global scope.
* ``"convs"``: every conv, no dense layer.
* ``"pointwise"``: the 1x1 convs and the dense layer; the stem and depthwise
  convs stay dense (the RigL convention for MobileNets).
"""

from __future__ import annotations

import keras

from keras_lottery.layers import MaskedDepthwiseConv2D
from keras_lottery.models._common import (
    BN_INITS,
    batch_norm,
    check_choice,
    check_input_shape,
    classifier,
    conv,
    depthwise_conv,
    masked_names,
)
from keras_lottery.models.registry import Architecture, Block, Stage, register

STEMS = ("cifar", "imagenet")
V1_STAGES = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2),) + ((512, 1),) * 5,
    ((1024, 2), (1024, 1)),
)
V2_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(
            f"alpha (width multiplier) must be a positive number like 0.5, 0.75 or "
            f"1.0; got {alpha!r}."
        )
    return float(alpha)


def _default_shape(stem):
    return (32, 32, 3) if stem == "cifar" else (224, 224, 3)


def _scopes(model):
    names = masked_names(model)
    convs = tuple(n for n in names if n != "output")
    depthwise = {n for n in masked_names(model, MaskedDepthwiseConv2D)}
    pointwise = tuple(
        n
        for n in convs
        if n not in depthwise and tuple(model.get_layer(n).kernel_size) == (1, 1)
    )
    return {
        "paper": convs + ("output",),
        "all": convs + ("output",),
        "convs": convs,
        "pointwise": pointwise + ("output",),
    }


def build_mobilenet_v1(
    num_classes, input_shape=None, alpha=1.0, stem="cifar", bn_init="uniform"
):
    alpha = _check_alpha(alpha)
    check_choice(stem, STEMS, "stem")
    check_choice(bn_init, BN_INITS, "bn_init")
    if int(32 * alpha) < 1:
        raise ValueError(f"alpha={alpha} leaves the stem with no filters.")
    shape = check_input_shape(input_shape, _default_shape(stem), "mobilenet_v1")

    inputs = keras.Input(shape, name="input")
    x = conv(inputs, int(32 * alpha), 3, 2 if stem == "imagenet" else 1, "stem_conv")
    x = batch_norm("stem_bn", bn_init)(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    stages = []
    for s, settings in enumerate(V1_STAGES, start=1):
        blocks = []
        for b, (filters, strides) in enumerate(settings, start=1):
            p = f"stage{s}_block{b}"
            filters = int(filters * alpha)
            downsample = strides != 1 or x.shape[-1] != filters
            x = depthwise_conv(x, 3, strides, p + "_dw_conv")
            x = batch_norm(p + "_dw_bn", bn_init)(x)
            x = keras.layers.ReLU(name=p + "_dw_relu")(x)
            x = conv(x, filters, 1, 1, p + "_pw_conv")
            x = batch_norm(p + "_pw_bn", bn_init)(x)
            x = keras.layers.ReLU(name=p + "_pw_relu")(x)
            layers = (p + "_dw_conv", p + "_dw_bn", p + "_pw_conv", p + "_pw_bn")
            blocks.append(Block(p, layers, downsample=downsample))
        stages.append(Stage(f"stage{s}", tuple(blocks)))
    outputs = classifier(x, num_classes)
    model = keras.Model(inputs, outputs, name="mobilenet_v1")
    architecture = Architecture(
        family="mobilenet_v1",
        name=model.name,
        stem=("stem_conv", "stem_bn"),
        stages=tuple(stages),
        head=("output",),
        scopes=_scopes(model),
        options={"alpha": alpha, "stem": stem, "bn_init": bn_init},
    )
    return model, architecture


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's ``_make_divisible``: round to a multiple of ``divisor``
    without going more than 10% below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def build_mobilenet_v2(
    num_classes, input_shape=None, alpha=1.0, stem="imagenet", bn_init="ones"
):
    alpha = _check_alpha(alpha)
    check_choice(stem, STEMS, "stem")
    check_choice(bn_init, BN_INITS, "bn_init")
    shape = check_input_shape(input_shape, _default_shape(stem), "mobilenet_v2")
    cifar = stem == "cifar"

    inputs = keras.Input(shape, name="input")
    x = conv(inputs, make_divisible(32 * alpha), 3, 1 if cifar else 2, "stem_conv")
    x = batch_norm("stem_bn", bn_init)(x)
    x = keras.layers.ReLU(6.0, name="stem_relu")(x)
    stages = []
    for s, (t, c, n, first_stride) in enumerate(V2_SETTINGS, start=1):
        if cifar and s == 2:
            first_stride = 1
        out_channels = make_divisible(c * alpha)
        blocks = []
        for b in range(1, n + 1):
            p = f"stage{s}_block{b}"
            strides = first_stride if b == 1 else 1
            in_channels = x.shape[-1]
            residual = strides == 1 and in_channels == out_channels
            y, layers = x, []
            if t != 1:
                y = conv(y, int(round(in_channels * t)), 1, 1, p + "_expand_conv")
                y = batch_norm(p + "_expand_bn", bn_init)(y)
                y = keras.layers.ReLU(6.0, name=p + "_expand_relu")(y)
                layers += [p + "_expand_conv", p + "_expand_bn"]
            y = depthwise_conv(y, 3, strides, p + "_dw_conv")
            y = batch_norm(p + "_dw_bn", bn_init)(y)
            y = keras.layers.ReLU(6.0, name=p + "_dw_relu")(y)
            y = conv(y, out_channels, 1, 1, p + "_project_conv")
            y = batch_norm(p + "_project_bn", bn_init)(y)
            layers += [p + "_dw_conv", p + "_dw_bn", p + "_project_conv"]
            layers += [p + "_project_bn"]
            x = keras.layers.Add(name=p + "_add")([x, y]) if residual else y
            blocks.append(Block(p, tuple(layers), downsample=not residual))
        stages.append(Stage(f"stage{s}", tuple(blocks)))
    x = conv(x, make_divisible(1280 * max(1.0, alpha)), 1, 1, "head_conv")
    x = batch_norm("head_bn", bn_init)(x)
    x = keras.layers.ReLU(6.0, name="head_relu")(x)
    outputs = classifier(x, num_classes)
    model = keras.Model(inputs, outputs, name="mobilenet_v2")
    architecture = Architecture(
        family="mobilenet_v2",
        name=model.name,
        stem=("stem_conv", "stem_bn"),
        stages=tuple(stages),
        head=("head_conv", "head_bn", "output"),
        scopes=_scopes(model),
        options={"alpha": alpha, "stem": stem, "bn_init": bn_init},
    )
    return model, architecture


@register("mobilenet_v1")
def mobilenet_v1(
    num_classes, input_shape=None, alpha=1.0, stem="cifar", bn_init="uniform"
):
    """MobileNetV1; ``stem="cifar"`` (stride 1, 32x32) or ``"imagenet"`` (stride 2,
    224x224)."""
    return build_mobilenet_v1(num_classes, input_shape, alpha, stem, bn_init)


@register("mobilenet_v2")
def mobilenet_v2(
    num_classes, input_shape=None, alpha=1.0, stem="imagenet", bn_init="ones"
):
    """MobileNetV2; ``stem="imagenet"`` (224x224) or ``"cifar"`` (stride-1 stem
    and second stage, 32x32)."""
    return build_mobilenet_v2(num_classes, input_shape, alpha, stem, bn_init)
