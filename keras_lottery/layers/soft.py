"""Soft-mask layers for Continuous Sparsification (Savarese, Silva & Maire, 2020).

Each class subclasses the Keras layer it is named after, takes the same
constructor arguments plus ``mask_initial_value`` (s0) and ``mask_penalty``
(lambda), and uses the effective kernel ``w * m`` with

    m = sigmoid(beta * s) / sigmoid(s0),

where ``s`` (``mask_logits``, trainable, kernel-shaped) starts at ``s0`` so that
``m = 1`` at initialization, and ``beta`` (``temperature``) is a non-trainable
scalar variable: a callback anneals it without retracing the training step. In
``call`` the layer adds ``lambda * sum(m)`` to the model's losses (the L1 penalty
on the soft mask that stands in for L0), so ``model.fit`` needs nothing special.
``lambda`` is a non-trainable variable too (``set_penalty``), so it can change
between epochs without retracing.

As beta grows, ``m`` tends to ``1[s > 0] / sigmoid(s0)``; :func:`hard_mask`
gives that binary mask (without the constant factor, see ``docs/design.md``).

Example:

>>> layer = SoftMaskedConv2D(16, 3, padding="same", mask_initial_value=0.0)
>>> layer.build((None, 32, 32, 3))
>>> float(keras.ops.max(layer.soft_mask()))    # 1.0 at initialization
1.0
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_lottery.layers._base import PACKAGE, KernelMaskMixin


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def check_soft_arguments(mask_initial_value, mask_penalty) -> None:
    """Raises ``ValueError`` unless s0 is finite and lambda is finite and >= 0.

    Example:

    >>> check_soft_arguments(0.0, 1e-8)  # fine: returns None
    >>> check_soft_arguments(0.0, -1.0)
    Traceback (most recent call last):
    ...
    ValueError: mask_penalty must be >= 0; got -1.0.
    """
    for what, value in (
        ("mask_initial_value", mask_initial_value),
        ("mask_penalty", mask_penalty),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ValueError(f"{what} must be a finite number; got {value!r}.")
    if mask_penalty < 0:
        raise ValueError(f"mask_penalty must be >= 0; got {mask_penalty!r}.")


class SoftMaskMixin(KernelMaskMixin):
    """Adds mask logits, a temperature and an L1 mask penalty to a Keras
    Dense/Conv layer (see the module docstring).

    ``build`` adds ``mask_logits`` (trainable, kernel-shaped, all ``s0``),
    ``temperature`` and ``mask_penalty`` (non-trainable scalars) after the
    parent's variables; the ``kernel`` property returns ``w * soft_mask()``. The
    raw kernel, its storage and the saving order (kernel, bias if used, mask
    logits, temperature, penalty) come from :class:`KernelMaskMixin`.

    Example:

    >>> layer = SoftMaskedDense(2, mask_penalty=0.01)
    >>> layer.build((None, 3))
    >>> [w.name for w in layer.weights]
    ['kernel', 'bias', 'mask_logits', 'temperature', 'mask_penalty']
    """

    _lora_rank_refusal = "{cls} does not support `lora_rank`."
    _lora_refusal = "{cls} does not support LoRA."
    _quantize_refusal = (
        "{cls} cannot be quantized: binarize the mask first "
        "(keras_lottery.conversion.harden) and strip it "
        "(keras_lottery.export.strip_masks)."
    )
    _saved_contents = "(kernel, bias if used, mask logits, temperature, penalty)"

    def __init__(self, *args, mask_initial_value=0.0, mask_penalty=1e-8, **kwargs):
        check_soft_arguments(mask_initial_value, mask_penalty)
        super().__init__(*args, **kwargs)
        self.mask_initial_value = float(mask_initial_value)
        self.mask_penalty = float(mask_penalty)

    def build(self, input_shape):
        super().build(input_shape)
        self.mask_logits = self.add_weight(
            name="mask_logits",
            shape=tuple(self._kernel.shape),
            initializer=keras.initializers.Constant(self.mask_initial_value),
            trainable=True,
        )
        self.temperature = self.add_weight(
            name="temperature", shape=(), initializer="ones", trainable=False
        )
        self.penalty = self.add_weight(
            name="mask_penalty",
            shape=(),
            initializer=keras.initializers.Constant(self.mask_penalty),
            trainable=False,
        )

    def _mask_variables(self) -> list:
        return [self.mask_logits, self.temperature, self.penalty]

    def _mask_ready(self) -> bool:
        # The penalty is the last variable ``build`` adds.
        return getattr(self, "penalty", None) is not None

    def _effective_kernel(self, raw):
        return ops.multiply(raw, ops.cast(self.soft_mask(), raw.dtype))

    def soft_mask(self):
        """``sigmoid(beta * s) / sigmoid(s0)`` as a tensor.

        Example:

        >>> layer = SoftMaskedDense(2, mask_initial_value=0.5)
        >>> layer.build((None, 3))
        >>> float(ops.max(layer.soft_mask()))  # 1.0 while s == s0 and beta == 1
        1.0
        """
        scale = 1.0 / _sigmoid(self.mask_initial_value)
        logits = ops.convert_to_tensor(self.mask_logits)
        beta = ops.cast(self.temperature, logits.dtype)
        return ops.multiply(ops.sigmoid(ops.multiply(beta, logits)), scale)

    def call(self, inputs):
        outputs = super().call(inputs)
        self.add_loss(ops.multiply(self.penalty, ops.sum(self.soft_mask())))
        return outputs

    def hard_mask(self) -> np.ndarray:
        """The binary mask ``s > 0`` as a numpy bool array.

        Example:

        >>> layer = SoftMaskedDense(2, mask_initial_value=0.5)
        >>> layer.build((None, 1))
        >>> layer.hard_mask()
        array([[ True,  True]])
        """
        return np.asarray(ops.convert_to_numpy(self.mask_logits)) > 0

    def set_temperature(self, beta: float) -> None:
        """Sets beta (> 0, finite) without retracing the training step.

        Example:

        >>> layer = SoftMaskedDense(2)
        >>> layer.build((None, 3))
        >>> layer.set_temperature(4.0)
        >>> float(ops.convert_to_numpy(layer.temperature))
        4.0
        """
        if not beta > 0 or not math.isfinite(beta):
            raise ValueError(f"The temperature must be > 0; got {beta!r}.")
        self.temperature.assign(float(beta))

    def set_penalty(self, penalty: float) -> None:
        """Sets lambda (>= 0, finite) without retracing the training step.

        Example:

        >>> layer = SoftMaskedDense(2)
        >>> layer.build((None, 3))
        >>> layer.set_penalty(0.5)
        >>> float(ops.convert_to_numpy(layer.penalty))
        0.5
        """
        if not penalty >= 0 or not math.isfinite(penalty):
            raise ValueError(f"The mask penalty must be >= 0; got {penalty!r}.")
        self.penalty.assign(float(penalty))

    def get_config(self):
        config = super().get_config()
        config["mask_initial_value"] = self.mask_initial_value
        config["mask_penalty"] = self.mask_penalty
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftMaskedDense(SoftMaskMixin, keras.layers.Dense):
    """``keras.layers.Dense`` with a Continuous Sparsification soft mask.

    Example:

    >>> layer = SoftMaskedDense(3, mask_initial_value=0.2, mask_penalty=1e-4)
    >>> layer.build((None, 4))
    >>> tuple(layer.mask_logits.shape)
    (4, 3)
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftMaskedConv2D(SoftMaskMixin, keras.layers.Conv2D):
    """``keras.layers.Conv2D`` with a Continuous Sparsification soft mask.

    Example:

    >>> layer = SoftMaskedConv2D(8, 3, padding="same")
    >>> layer.build((None, 16, 16, 3))
    >>> tuple(layer.mask_logits.shape)
    (3, 3, 3, 8)
    """


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftMaskedDepthwiseConv2D(SoftMaskMixin, keras.layers.DepthwiseConv2D):
    """``keras.layers.DepthwiseConv2D`` with a Continuous Sparsification soft mask.

    Example:

    >>> layer = SoftMaskedDepthwiseConv2D(3)
    >>> layer.build((None, 16, 16, 4))
    >>> tuple(layer.mask_logits.shape)
    (3, 3, 4, 1)
    """


def is_soft_masked(layer) -> bool:
    """True for the soft-mask layers of this module (and their subclasses).

    Example:

    >>> is_soft_masked(SoftMaskedDense(2)), is_soft_masked(keras.layers.Dense(2))
    (True, False)
    """
    return isinstance(layer, SoftMaskMixin)
