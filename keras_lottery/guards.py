"""Divergence guards: training that produced a non-finite loss or non-finite
weights stops with a :class:`~keras_lottery.errors.DivergenceError` naming the
phase and the epoch, before anything of that phase is saved.

A diverged run otherwise goes on silently: NaN kernels make magnitude pruning's
cutoff NaN (nothing is pruned), and the NaN weights are saved as a ticket.
:func:`~keras_lottery.training.fit_and_record` adds :class:`StopOnDivergence`
to every training it runs (IMP rounds and controls, CS tickets, branches,
instability copies); other loops can call :func:`check_finite` directly.

Training that stays finite but learns nothing (Adam at a huge learning rate
ends at chance accuracy with finite weights of size ~1e8) is not refused: no
threshold on loss or weight size separates it from a legitimately hard problem.
It is *warned* about on one principled signal: a cross-entropy model whose last
epoch's training loss is above ``ln(classes)``, the loss of predicting the
uniform distribution, did worse than a constant guess on its own training data.

Example:

>>> model.fit(x, y, epochs=3, callbacks=[StopOnDivergence("IMP round 2 (ticket)")])
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_lottery._messages import print_msg
from keras_lottery.errors import DivergenceError


def nonfinite_value(model, logs=None) -> str | None:
    """What is not finite: ``"the loss (nan)"``, ``"the weights of 'dense_1'
    (dense_1/kernel)"``, or ``None`` when the logged losses and every weight of
    ``model`` are finite.

    >>> nonfinite_value(model, {"loss": float("nan")})
    'the loss (nan)'
    """
    for key in ("loss", "val_loss"):
        value = (logs or {}).get(key)
        if value is not None and not math.isfinite(float(value)):
            return f"the {key.replace('_', ' ')} ({float(value)})"
    for variable in model.weights:
        if "float" not in str(variable.dtype):
            continue  # step counters, seed states
        # Reduced where the variable lives: one bool crosses to the host.
        if not bool(ops.convert_to_numpy(ops.all(ops.isfinite(variable)))):
            return f"the weights ({variable.path})"
    return None


def check_finite(model, phase: str, epoch: int | None = None, logs=None) -> None:
    """Raises :class:`DivergenceError` if the logged loss or a weight of
    ``model`` is not finite; ``phase`` and ``epoch`` (1-based) name where.

    >>> check_finite(model, "IMP round 2 (ticket)", epoch=3, logs=logs)
    """
    bad = nonfinite_value(model, logs)
    if bad is None:
        return
    at = f" at epoch {epoch}" if epoch is not None else ""
    raise DivergenceError(
        f"Training diverged in {phase}{at}: {bad} is not finite. Nothing was "
        "saved for this phase; lower the learning rate (or add warmup) and "
        "re-run: finished phases are kept."
    )


class StopOnDivergence(keras.callbacks.Callback):
    """Raises :class:`DivergenceError` at the end of the first epoch whose loss
    (or validation loss) or weights are not finite.

    Args:
        phase: what is training, for the message (``"IMP round 2 (ticket)"``).

    >>> callback = StopOnDivergence("CS ticket")
    """

    def __init__(self, phase: str = "training"):
        super().__init__()
        self.phase = phase
        self._epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_begin(self, logs=None):
        self._loss = None

    def on_epoch_end(self, epoch, logs=None):
        check_finite(self.model, self.phase, self._epoch, logs)
        self._loss = (logs or {}).get("loss", self._loss)

    def on_train_end(self, logs=None):
        # A run stopped mid-epoch (StopAtIteration) still ends here.
        check_finite(self.model, self.phase, self._epoch)
        uniform = uniform_guess_loss(self.model)
        if uniform is not None and self._loss is not None and self._loss > 2 * uniform:
            print_msg(
                f"[keras_lottery] warning: {self.phase} ended with training loss "
                f"{float(self._loss):.4g}, above {uniform:.4g} = ln(classes), the "
                "loss of a uniform guess: training likely diverged (learning rate "
                "too high?)."
            )


def uniform_guess_loss(model) -> float | None:
    """``ln(classes)`` for a model compiled with a categorical cross-entropy
    loss (what predicting the uniform distribution scores), else ``None``.

    >>> uniform_guess_loss(model)  # 10 classes
    2.302585092994046
    """
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "name", "")
    if "categorical_crossentropy" not in str(name):
        return None
    classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
    return math.log(classes) if classes and classes > 1 else None
