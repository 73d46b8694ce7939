"""Masked twins of Keras's Dense and convolution layers.

Each class subclasses the Keras layer it is named after, takes exactly the same
constructor arguments, and adds one non-trainable boolean variable, ``mask``,
created in ``build`` with the kernel's shape. The forward pass uses
``kernel * cast(mask)``, so pruned entries receive a zero gradient and the output
never depends on what the stored kernel holds at pruned positions (as long as
it is finite). Every write of a mask (``set_mask``, ``pruning.set_masks``,
``rewind.restore_state``, ``Ticket.apply``, loading a file) also zeroes those
entries of the stored kernel, which together with a zero gradient keeps them
exactly zero under any standard optimizer whose state for them is zero
(``pruning.set_masks`` clears that state), so magnitude pruning never sees
stale values.

The mask is stored as ``bool`` (one byte per weight, 25% of a float32 kernel);
``benchmarks/masked_overhead.py`` measures what masking costs per training step,
against other formulations.

Example:

>>> layer = MaskedDense(4)
>>> layer.build((None, 3))
>>> layer.set_mask(np.array([[1, 0, 1, 1]] * 3))
>>> float(np.mean(np.asarray(layer.kernel) == 0))
0.25
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_lottery.layers._variables import load_variables, save_variables

PACKAGE = "keras_lottery"


class MaskedLayerMixin:
    """Adds a boolean ``mask`` over ``kernel`` to a Keras Dense/Conv layer.

    The parent's ``build`` creates the raw kernel as ``self._kernel`` (Dense and
    Conv do so already; DepthwiseConv assigns ``self.kernel``, which the setter
    below redirects). The ``kernel`` property, which every parent ``call``
    reads, returns the masked kernel.
    """

    #: Storage dtype of the mask; ``bool`` costs 1 byte per weight.
    mask_dtype = "bool"

    def __init__(self, *args, **kwargs):
        if kwargs.get("lora_rank"):
            raise ValueError(
                f"{type(self).__name__} does not support `lora_rank`: LoRA would "
                "add dense updates on top of the pruned kernel. Strip the masks "
                "first (keras_lottery.export.strip_masks) and enable LoRA on the "
                "plain model."
            )
        super().__init__(*args, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(
            name="mask",
            shape=tuple(self._kernel.shape),
            initializer="ones",
            dtype=self.mask_dtype,
            trainable=False,
        )

    @property
    def kernel(self):
        if not self.built and getattr(self, "_kernel", None) is None:
            raise AttributeError("You must build the layer before accessing `kernel`.")
        kernel = ops.convert_to_tensor(self._kernel)
        mask = getattr(self, "mask", None)
        if mask is None:  # during the parent's build
            return kernel
        # A multiply costs ~25% less than where(mask, kernel, 0), forward and
        # backward (benchmarks/masked_overhead.py --ops).
        return ops.multiply(kernel, ops.cast(mask, kernel.dtype))

    @kernel.setter
    def kernel(self, value):
        # DepthwiseConv's build does `self.kernel = self.add_weight(...)`.
        self._kernel = value

    @property
    def raw_kernel(self):
        """The stored kernel variable (pruned entries are kept at zero)."""
        return self._kernel

    def set_mask(self, mask):
        """Writes ``mask`` (bool or 0/1 values, kernel-shaped) and zeroes pruned
        kernel entries. Raises ``ValueError`` before changing anything if the
        mask has the wrong shape or values other than 0 and 1."""
        mask = validate_mask(mask, tuple(self._kernel.shape), self.name)
        self.mask.assign(ops.cast(mask, self.mask.dtype))
        self._kernel.assign(_zero_pruned(self._kernel, mask))

    def get_mask(self) -> np.ndarray:
        """The current mask as a numpy bool array."""
        return np.asarray(ops.convert_to_numpy(self.mask), dtype=bool)

    def enable_lora(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} does not support LoRA; strip the masks first "
            "(keras_lottery.export.strip_masks)."
        )

    def quantize(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized directly because the "
            "quantized kernel would bypass the mask; strip the masks first "
            "(keras_lottery.export.strip_masks) and quantize the plain model."
        )

    def _masked_variables(self):
        variables = [self._kernel]
        if getattr(self, "bias", None) is not None:
            variables.append(self.bias)
        variables.append(self.mask)
        return variables

    def save_own_variables(self, store):
        if self.built:
            save_variables(store, self._masked_variables())

    def load_own_variables(self, store):
        if not self.built:
            return
        load_variables(
            store,
            self._masked_variables(),
            self.name,
            "(kernel, bias if used, mask)",
            f"Was it saved from a plain {type(self).__mro__[2].__name__}?",
        )
        # A file whose kernel holds stale values at pruned positions must not
        # bring them back into the stored kernel (magnitude pruning reads it).
        self._kernel.assign(_zero_pruned(self._kernel, self.mask))


def _zero_pruned(kernel, mask):
    """``kernel`` with exact zeros where ``mask`` is false (non-finite values
    included, which a multiply would keep)."""
    kernel = ops.convert_to_tensor(kernel)
    mask = ops.cast(ops.convert_to_tensor(mask), "bool")
    return ops.where(mask, kernel, ops.zeros((), kernel.dtype))


def validate_mask(mask, shape: tuple, layer_name: str) -> np.ndarray:
    """Returns ``mask`` as a bool array, or raises ``ValueError`` naming the layer.

    Accepts bool arrays and integer/float arrays holding only 0 and 1.
    """
    array = np.asarray(ops.convert_to_numpy(mask))
    if tuple(array.shape) != tuple(shape):
        raise ValueError(
            f"Mask for layer '{layer_name}' has shape {tuple(array.shape)}; "
            f"the kernel's shape is {tuple(shape)}."
        )
    if array.dtype == bool:
        return array
    if not (
        np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise ValueError(
            f"Mask for layer '{layer_name}' has dtype {array.dtype}; allowed: bool, "
            "or an integer/float array holding only 0 and 1."
        )
    if not np.all((array == 0) | (array == 1)):
        bad = array[(array != 0) & (array != 1)].ravel()[:3]
        raise ValueError(
            f"Mask for layer '{layer_name}' holds values other than 0 and 1 "
            f"(e.g. {bad.tolist()}); allowed: bool, or 0/1 values."
        )
    return array.astype(bool)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedDense(MaskedLayerMixin, keras.layers.Dense):
    """``keras.layers.Dense`` with a boolean weight mask over its kernel."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedConv1D(MaskedLayerMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with a boolean weight mask over its kernel."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedConv2D(MaskedLayerMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a boolean weight mask over its kernel."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedDepthwiseConv2D(MaskedLayerMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with a boolean mask over its kernel."""


#: Plain Keras class -> masked twin. Exact classes only: subclasses of these
#: (including the masked twins themselves) are left alone by ``prunable``.
MASKED_TWINS: dict[type, type] = {
    keras.layers.Dense: MaskedDense,
    keras.layers.Conv1D: MaskedConv1D,
    keras.layers.Conv2D: MaskedConv2D,
    keras.layers.DepthwiseConv2D: MaskedDepthwiseConv2D,
}

#: Masked class -> the plain Keras class it strips to.
PLAIN_TWINS: dict[type, type] = {v: k for k, v in MASKED_TWINS.items()}


def is_masked(layer) -> bool:
    """True for the masked layers of this module (and their subclasses)."""
    return isinstance(layer, MaskedLayerMixin)
