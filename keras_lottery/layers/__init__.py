"""Prunable layers: masked twins of Keras's Dense and convolution layers."""

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

__all__ = [
    "MASKED_TWINS",
    "PLAIN_TWINS",
    "MaskedConv1D",
    "MaskedConv2D",
    "MaskedDense",
    "MaskedDepthwiseConv2D",
    "MaskedLayerMixin",
    "is_masked",
    "validate_mask",
]
