"""Building blocks shared by the convolutional model families.

Conventions (documented in ``docs/models.md``):

* **Kernels** (conv, depthwise, dense): He/Kaiming normal, *untruncated*, fan-in
  as PyTorch computes it, i.e. ``torch.nn.init.kaiming_normal_`` with its
  defaults, which is what open_lth's ``kaiming_normal`` initializer applies to
  every conv and linear layer: ``std = sqrt(2 / (kh * kw * in_channels))``. For a
  depthwise kernel PyTorch's fan-in is ``kh * kw`` (one input channel per group),
  which is Keras's *fan-out* of a ``(kh, kw, C, 1)`` kernel, so depthwise convs use
  ``mode="fan_out"``. Every layer gets its own initializer instance: an unseeded
  Keras initializer draws one seed when constructed, so a shared instance would
  give identical kernels to same-shaped layers.
* **Biases** (dense, VGG convs): zeros (PyTorch's default is a small uniform).
* **BatchNorm**: PyTorch's hyper-parameters (``momentum=0.9`` in Keras's
  convention, ``epsilon=1e-5``); ``bn_init="uniform"`` draws gamma ~ U[0, 1]
  (open_lth's default), ``"ones"`` sets gamma = 1; beta = 0 either way.
* **Padding** reproduces PyTorch's symmetric ``padding=k // 2``: stride-1 convs
  use ``"same"`` (identical for odd kernels); strided convs and pools get an
  explicit ``ZeroPadding2D`` followed by ``"valid"`` (Keras's ``"same"`` would pad
  only bottom/right for even inputs and shift every sampled position).
"""

from __future__ import annotations

import keras

from keras_lottery.layers import MaskedConv2D, MaskedDense, MaskedDepthwiseConv2D

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
BN_INITS = ("uniform", "ones")


def he_normal(depthwise: bool = False) -> keras.initializers.Initializer:
    """A fresh He-normal initializer with PyTorch's fan-in (see module doc)."""
    return keras.initializers.VarianceScaling(
        scale=2.0,
        mode="fan_out" if depthwise else "fan_in",
        distribution="untruncated_normal",
    )


def check_choice(value, choices, what: str):
    if value not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}; got {value!r}.")
    return value


def check_positive_int(value, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}; got {value!r}.")
    return value


def check_input_shape(input_shape, default, name: str, min_size: int = 1) -> tuple:
    """``input_shape`` (or ``default``) as an ``(H, W, C)`` tuple of positive ints
    with ``H, W >= min_size``; raises ``ValueError`` otherwise."""
    shape = tuple(input_shape) if input_shape is not None else tuple(default)
    ok = len(shape) == 3 and all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    )
    if not ok or min(shape[:2]) < min_size:
        raise ValueError(
            f"{name} needs an input_shape (height, width, channels) of positive ints "
            f"with height and width >= {min_size}, like {tuple(default)}; "
            f"got {input_shape!r}."
        )
    return shape


def batch_norm(name: str, bn_init: str) -> keras.layers.BatchNormalization:
    check_choice(bn_init, BN_INITS, "bn_init")
    gamma = (
        keras.initializers.RandomUniform(0.0, 1.0) if bn_init == "uniform" else "ones"
    )
    return keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer=gamma,
        beta_initializer="zeros",
        name=name,
    )


def _pad(x, kernel_size: int, strides: int, name: str):
    """Explicit PyTorch-style padding for strided ops; returns (x, padding)."""
    if strides == 1:
        return x, "same"
    if kernel_size // 2:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=name)(x)
    return x, "valid"


def conv(x, filters, kernel_size, strides, name, use_bias=False):
    """A masked ``kernel_size`` x ``kernel_size`` convolution with PyTorch padding."""
    x, padding = _pad(x, kernel_size, strides, name + "_pad")
    return MaskedConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=he_normal(),
        bias_initializer="zeros",
        name=name,
    )(x)


def depthwise_conv(x, kernel_size, strides, name):
    """A masked depthwise convolution (depth multiplier 1, no bias)."""
    x, padding = _pad(x, kernel_size, strides, name + "_pad")
    return MaskedDepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=he_normal(depthwise=True),
        name=name,
    )(x)


def max_pool(x, pool_size, strides, name):
    """Max-pooling with PyTorch padding (zero padding is exact after a ReLU)."""
    x, padding = _pad(x, pool_size, strides, name + "_pad")
    return keras.layers.MaxPooling2D(pool_size, strides, padding=padding, name=name)(x)


def classifier(x, num_classes, name="output"):
    """Global average pooling and a masked dense layer (He-normal, zero bias)."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return MaskedDense(
        num_classes,
        kernel_initializer=he_normal(),
        bias_initializer="zeros",
        name=name,
    )(x)


def masked_names(model, kinds=None) -> list[str]:
    """Names of ``model``'s masked layers in layer order (optionally only the
    classes in ``kinds``)."""
    from keras_lottery.layers import is_masked

    return [
        layer.name
        for layer in model.layers
        if is_masked(layer) and (kinds is None or isinstance(layer, kinds))
    ]
