"""Prunable layers: masked twins of Keras's Dense and convolution layers, and
the soft-mask layers of Continuous Sparsification."""

from keras_lottery.layers.masked import (
    MASKED_TWINS,
    PLAIN_TWINS,
    MaskedConv1D,
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    MaskedLayerMixin,
    is_masked,
    validate_mask,
)
from keras_lottery.layers.soft import (
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
    SoftMaskMixin,
    is_soft_masked,
)

__all__ = [
    "MASKED_TWINS",
    "PLAIN_TWINS",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedLayerMixin",
    "SoftMaskMixin",
    "SoftMaskedConv2D",
    "SoftMaskedDense",
    "SoftMaskedDepthwiseConv2D",
    "is_masked",
    "is_soft_masked",
    "validate_mask",
]
