"""Optimizers with PyTorch-style (coupled) weight decay.

The papers' recipes (open_lth, Continuous Sparsification, ToST) use PyTorch's
``SGD(weight_decay=wd)``, which adds ``wd * w`` to the gradient *before* momentum.
Keras's ``weight_decay`` argument is decoupled instead (``w -= lr * wd * w`` after
the step, AdamW-style): with momentum 0.9 the same number decays about ten times
less. :class:`CoupledSGD` and :class:`CoupledAdam` reproduce PyTorch's semantics
exactly and work on every backend (the decay term is added to the gradients in
``apply``, which ``model.fit`` calls on TensorFlow, JAX and PyTorch alike).

Variables whose name contains one of ``exclude`` get no decay (Continuous
Sparsification excludes its mask logits); the list is part of the config, so it
survives ``model.get_compile_config()`` / ``compile_from_config``.

Example:

>>> optimizer = CoupledSGD(0.1, momentum=0.9, nesterov=True,
...                        coupled_weight_decay=1e-4, exclude=["mask_logits"])
>>> model.compile(optimizer, "sparse_categorical_crossentropy")
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "keras_lottery"


class _CoupledWeightDecay:
    """Adds ``coupled_weight_decay * w`` to each gradient before the update."""

    def __init__(self, *args, coupled_weight_decay=0.0, exclude=(), **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(
                f"{type(self).__name__} takes `coupled_weight_decay` (PyTorch "
                "semantics); do not also pass Keras's decoupled `weight_decay`."
            )
        value = coupled_weight_decay
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(
                f"coupled_weight_decay must be a number >= 0; got {value!r}."
            )
        super().__init__(*args, **kwargs)
        self.coupled_weight_decay = float(value)
        self.exclude = [str(name) for name in exclude]
        self.exclude_from_weight_decay(var_names=self.exclude or None)

    def apply(self, grads, trainable_variables=None):
        if self.coupled_weight_decay:
            variables = (
                self._trainable_variables
                if trainable_variables is None
                else list(trainable_variables)
            )
            grads = [
                g
                if g is None or not self._use_weight_decay(v)
                else ops.add(
                    g, ops.multiply(ops.cast(self.coupled_weight_decay, g.dtype), v)
                )
                for g, v in zip(grads, variables, strict=True)
            ]
        return super().apply(grads, trainable_variables)

    def get_config(self):
        config = super().get_config()
        config["coupled_weight_decay"] = self.coupled_weight_decay
        config["exclude"] = list(self.exclude)
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class CoupledSGD(_CoupledWeightDecay, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` with PyTorch's ``weight_decay`` semantics."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class CoupledAdam(_CoupledWeightDecay, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with PyTorch's ``weight_decay`` (L2) semantics."""
