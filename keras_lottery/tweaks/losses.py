"""Label smoothing for integer labels, on the convention of Jaiswal et al.'s code.

The authors' label smoothing puts ``1 - alpha`` on the true class and
``alpha / (C - 1)`` on each of the ``C - 1`` others (``alpha = 0.1``). Keras's
``label_smoothing=s`` puts ``1 - s + s / C`` on the true class and ``s / C``
elsewhere, so the two agree for ``s = alpha * C / (C - 1)`` (0.1111 for
CIFAR-10); :func:`keras_label_smoothing` converts. Keras's
``SparseCategoricalCrossentropy`` takes no ``label_smoothing`` at all, hence
:class:`SmoothedSparseCategoricalCrossentropy`.

Example:

>>> loss = SmoothedSparseCategoricalCrossentropy(alpha=0.1)
>>> model.compile("sgd", loss, metrics=["accuracy"])
>>> smoothed_targets([2], num_classes=3, alpha=0.1)   # [[0.05, 0.05, 0.9]]
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lottery.errors import ConfigError
from keras_lottery.layers._base import PACKAGE

#: The authors' smoothing strength.
DEFAULT_ALPHA = 0.1


def check_alpha(alpha, key: str = "alpha") -> float:
    """``alpha`` as a float in [0, 1); a :class:`ConfigError` naming ``key``."""
    ok = isinstance(alpha, (int, float)) and not isinstance(alpha, bool)
    if not ok or not 0 <= alpha < 1:
        raise ConfigError(f"'{key}' must be a number in [0, 1); got {alpha!r}.")
    return float(alpha)


def keras_label_smoothing(alpha: float, num_classes: int) -> float:
    """Keras's ``label_smoothing`` equal to ``alpha`` on the ``alpha / (C - 1)``
    convention.

    >>> round(keras_label_smoothing(0.1, 10), 4)
    0.1111
    """
    return check_alpha(alpha) * num_classes / (num_classes - 1)


def smoothed_targets(labels, num_classes: int, alpha: float = DEFAULT_ALPHA):
    """One row per label: ``1 - alpha`` on the label, ``alpha / (C - 1)``
    elsewhere (each row sums to 1). ``labels`` are integers, shape ``(n,)`` or
    ``(n, 1)``."""
    alpha = check_alpha(alpha)
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) > 1 and labels.shape[-1] == 1:
        labels = ops.squeeze(labels, axis=-1)
    one_hot = ops.one_hot(ops.cast(labels, "int32"), num_classes)
    off = alpha / (num_classes - 1)
    return one_hot * (1.0 - alpha - off) + off


@keras.saving.register_keras_serializable(package=PACKAGE)
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against :func:`smoothed_targets`.

    Args:
        alpha: the smoothing (``1 - alpha`` on the true class).
        from_logits: ``False`` (the zoo's models end in softmax) or ``True``.
    """

    def __init__(
        self,
        alpha: float = DEFAULT_ALPHA,
        from_logits: bool = False,
        reduction="sum_over_batch_size",
        name: str = "smoothed_sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_alpha(alpha)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        targets = smoothed_targets(y_true, y_pred.shape[-1], self.alpha)
        return keras.losses.categorical_crossentropy(
            ops.cast(targets, y_pred.dtype), y_pred, from_logits=self.from_logits
        )

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "from_logits": self.from_logits,
        }
