"""A ticket as a plain Keras model: masks baked into the kernels.

Example:

>>> plain = strip_masks(model)   # MaskedDense -> Dense, kernel * mask
>>> plain.save("ticket.keras")   # loads without keras_lottery
"""

from __future__ import annotations

import numpy as np
from keras import ops

from keras_lottery.conversion import check_graph_model, clone_with_weights, copy_of
from keras_lottery.layers.masked import PLAIN_TWINS, is_masked


def strip_masks(model):
    """A plain Keras copy of ``model`` with every mask baked into its kernel.

    Masked layers become the Keras layers they subclass (``MaskedDense`` ->
    ``Dense``...), with kernel ``kernel * mask``; outputs equal the masked
    model's. The result needs nothing from keras_lottery to load or serve.
    """
    check_graph_model(model, "strip_masks")

    def clone(layer):
        cls = PLAIN_TWINS.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    return clone_with_weights(model, clone, _bake)


def _bake(source, target) -> None:
    if not is_masked(source):
        for src, dst in zip(source.weights, target.weights, strict=True):
            dst.assign(copy_of(src))
        return
    target_vars = list(target.weights)
    kernel = ops.convert_to_numpy(source.raw_kernel)
    target_vars[0].assign(np.where(source.get_mask(), kernel, 0).astype(kernel.dtype))
    if getattr(source, "bias", None) is not None:
        target_vars[1].assign(copy_of(source.bias))
