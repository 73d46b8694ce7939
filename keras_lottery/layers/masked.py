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

The mask is stored as ``bool`` (one byte per weight, a quarter of a float32
kernel's bytes). The forward pass multiplies by ``cast(mask)`` rather than using
``where(mask, kernel, 0)`` because the multiply is the cheaper formulation, as
measured in ``docs/benchmarks.md`` (``benchmarks/masked_overhead.py``).

The kernel storage, the ``kernel``/``raw_kernel`` properties, the LoRA and
quantization refusals and the saving order come from
:class:`keras_lottery.layers._base.KernelMaskMixin`.

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

from keras_lottery.layers._base import PACKAGE, KernelMaskMixin


class MaskedLayerMixin(KernelMaskMixin):
    """Adds a boolean ``mask`` over ``kernel`` to a Keras Dense/Conv layer.

    ``build`` adds the non-trainable ``mask`` variable (kernel-shaped, all ones)
    after the parent's variables; the ``kernel`` property returns
    ``kernel * cast(mask)``. The raw kernel, its storage and the saving order
    (kernel, bias if used, mask) come from :class:`KernelMaskMixin`.

    Example:

    >>> layer = MaskedDense(2)
    >>> layer.build((None, 3))
    >>> [w.name for w in layer.weights]
    ['kernel', 'bias', 'mask']
    >>> layer.set_mask([[1, 0], [1, 1], [0, 1]])
    >>> int(layer.get_mask().sum())
    4
    """

    #: Storage dtype of the mask; ``bool`` costs 1 byte per weight.
    mask_dtype = "bool"

    _lora_rank_refusal = (
        "{cls} does not support `lora_rank`: LoRA would add dense updates on top "
        "of the pruned kernel. Strip the masks first "
        "(keras_lottery.export.strip_masks) and enable LoRA on the plain model."
    )
    _lora_refusal = (
        "{cls} does not support LoRA; strip the masks first "
        "(keras_lottery.export.strip_masks)."
    )
    _quantize_refusal = (
        "{cls} cannot be quantized directly because the quantized kernel would "
        "bypass the mask; strip the masks first (keras_lottery.export.strip_masks) "
        "and quantize the plain model."
    )
    _saved_contents = "(kernel, bias if used, mask)"

    def build(self, input_shape):
        super().build(input_shape)
        self.mask = self.add_weight(
            name="mask",
            shape=tuple(self._kernel.shape),
            initializer="ones",
            dtype=self.mask_dtype,
            trainable=False,
        )

    def _mask_variables(self) -> list:
        return [self.mask]

    def _mask_ready(self) -> bool:
        return getattr(self, "mask", None) is not None

    def _effective_kernel(self, raw):
        # Of this and where(mask, kernel, 0), the multiply is the cheaper
        # formulation, forward and backward, measured in docs/benchmarks.md.
        return ops.multiply(raw, ops.cast(self.mask, raw.dtype))

    def set_mask(self, mask):
        """Writes ``mask`` (bool or 0/1 values, kernel-shaped) and zeroes pruned
        kernel entries. Raises ``ValueError`` before changing anything if the
        mask has the wrong shape or values other than 0 and 1.

        Example:

        >>> layer = MaskedDense(2)
        >>> layer.build((None, 1))
        >>> layer.set_mask([[True, False]])
        >>> float(ops.convert_to_numpy(layer.raw_kernel)[0, 1])
        0.0
        """
        mask = validate_mask(mask, tuple(self._kernel.shape), self.name)
        self.mask.assign(ops.cast(mask, self.mask.dtype))
        self._kernel.assign(_zero_pruned(self._kernel, mask))

    def get_mask(self) -> np.ndarray:
        """The current mask as a numpy bool array.

        Example:

        >>> layer = MaskedDense(2)
        >>> layer.build((None, 1))
        >>> layer.get_mask()
        array([[ True,  True]])
        """
        return np.asarray(ops.convert_to_numpy(self.mask), dtype=bool)

    def _load_hint(self) -> str:
        return f"Was it saved from a plain {self._plain_class().__name__}?"

    def load_own_variables(self, store):
        """Loads kernel, bias if used and mask (see
        :meth:`KernelMaskMixin.load_own_variables`), then zeroes the pruned
        entries of the stored kernel."""
        if not self.built:
            return
        super().load_own_variables(store)
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

    Example:

    >>> validate_mask([[1, 0]], (1, 2), "dense")
    array([[ True, False]])
    >>> validate_mask([[1, 2]], (1, 2), "dense")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Mask for layer 'dense' holds values other than 0 and 1 (e.g. [2]); ...
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
    """``keras.layers.Dense`` with a boolean weight mask over its kernel.

    Example:

    >>> layer = MaskedDense(3, activation="relu")  # Dense's arguments
    >>> layer.build((None, 4))
    >>> tuple(layer.mask.shape)
    (4, 3)
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedConv1D(MaskedLayerMixin, keras.layers.Conv1D):
    """``keras.layers.Conv1D`` with a boolean weight mask over its kernel.

    Example:

    >>> layer = MaskedConv1D(8, 3)  # Conv1D's arguments
    >>> layer.build((None, 20, 2))
    >>> tuple(layer.mask.shape)
    (3, 2, 8)
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedConv2D(MaskedLayerMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a boolean weight mask over its kernel.

    Example:

    >>> layer = MaskedConv2D(8, 3, padding="same")  # Conv2D's arguments
    >>> layer.build((None, 16, 16, 3))
    >>> tuple(layer.mask.shape)
    (3, 3, 3, 8)
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedDepthwiseConv2D(MaskedLayerMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with a boolean mask over its kernel.

    Example:

    >>> layer = MaskedDepthwiseConv2D(3, depth_multiplier=2)
    >>> layer.build((None, 16, 16, 4))
    >>> tuple(layer.mask.shape)
    (3, 3, 4, 2)
    """


#: Plain Keras class -> masked twin (e.g. ``MASKED_TWINS[keras.layers.Dense]`` is
#: ``MaskedDense``). Exact classes only: subclasses of these
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
    """True for the masked layers of this module (and their subclasses).

    Example:

    >>> is_masked(MaskedDense(2)), is_masked(keras.layers.Dense(2))
    (True, False)
    """
    return isinstance(layer, MaskedLayerMixin)
