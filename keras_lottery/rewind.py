"""Rewind points: capture the full model state early in training, restore it later.

A rewind point is written like open_lth's steps: ``"500it"`` (after 500 optimizer
steps), ``"2ep"`` (after 2 epochs) or ``0`` (the initialization, Frankle &
Carbin's original reset). The captured state is *every* model variable, batch-norm
moving statistics included; restoring it is bitwise exact for surviving weights
and keeps the current masks.

Example:

>>> capture = RewindCheckpoint("500it")
>>> model.fit(x, y, epochs=10, callbacks=[capture])
>>> prune_magnitude(model, 0.2)
>>> restore_state(model, capture.state)     # survivors back to their step-500 values
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import keras
import numpy as np

from keras_lottery.layers.masked import is_masked

_STEP = re.compile(r"^\s*(\d+)\s*(it|ep)?\s*$")


@dataclass(frozen=True)
class Step:
    """A point in training: ``amount`` iterations or epochs."""

    amount: int
    unit: str  # "it" or "ep"

    @classmethod
    def parse(cls, value) -> Step:
        """Parses ``"500it"``, ``"2ep"``, ``0``/``"0"`` (=0it) or a Step."""
        if isinstance(value, Step):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"A step cannot be negative; got {value}.")
            return cls(int(value), "it")
        match = _STEP.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise ValueError(
                f"Invalid step {value!r}: write a number of iterations like '500it', "
                "a number of epochs like '2ep', or 0 for the initialization."
            )
        amount, unit = int(match.group(1)), match.group(2) or "it"
        if unit == "it" or amount == 0:
            return cls(amount, "it")
        return cls(amount, unit)

    def iterations(self, steps_per_epoch: int) -> int:
        """This step in optimizer iterations."""
        return self.amount * steps_per_epoch if self.unit == "ep" else self.amount

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def sync_state(model) -> None:
    """Makes the model's variables current (JAX's ``fit`` keeps them elsewhere
    during an epoch)."""
    sync = getattr(model, "jax_state_sync", None)
    if callable(sync):
        sync()


def capture_state(model) -> list[np.ndarray]:
    """Copies of every variable of ``model`` (``model.weights`` order)."""
    sync_state(model)
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.weights]


def restore_state(model, state: list[np.ndarray]) -> None:
    """Writes ``state`` back into every variable except the masks, then re-applies
    the current masks, so surviving weights get their captured values bitwise and
    pruned ones stay zero."""
    weights = model.weights
    if len(weights) != len(state):
        raise ValueError(
            f"The saved state holds {len(state)} variables but the model has "
            f"{len(weights)}: not the same architecture."
        )
    masks = {id(layer.mask) for layer in _masked(model)}
    for variable, value in zip(weights, state, strict=True):
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Cannot restore '{variable.path}': saved shape {value.shape}, "
                f"model shape {tuple(variable.shape)}."
            )
        if id(variable) not in masks:
            variable.assign(value)
    for layer in _masked(model):
        layer.set_mask(layer.get_mask())


def _masked(model):
    return [layer for layer in model._flatten_layers() if is_masked(layer)]


class RewindCheckpoint(keras.callbacks.Callback):
    """Captures the full model state at a rewind point of the first training run.

    ``state`` holds the captured arrays once training has passed ``step``
    (``None`` before). Iterations are counted from the start of this ``fit``.
    Deep-copyable (it holds no model until ``set_model``).
    """

    def __init__(self, step="0it"):
        super().__init__()
        self.step = Step.parse(step)
        self.state: list[np.ndarray] | None = None
        self._seen = 0

    def on_train_begin(self, logs=None):
        self._seen = 0
        self.state = None
        if self.step.amount == 0:
            self.state = capture_state(self.model)

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if (
            self.state is None
            and self.step.unit == "it"
            and self._seen == self.step.amount
        ):
            self.state = capture_state(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if (
            self.state is None
            and self.step.unit == "ep"
            and epoch + 1 == self.step.amount
        ):
            self.state = capture_state(self.model)


class StopAtIteration(keras.callbacks.Callback):
    """Stops ``fit`` once ``total`` optimizer steps have been taken in this run."""

    def __init__(self, total: int):
        super().__init__()
        self.total = int(total)
        self._seen = 0

    def on_train_begin(self, logs=None):
        self._seen = 0

    def on_train_batch_end(self, batch, logs=None):
        self._seen += 1
        if self._seen >= self.total:
            self.model.stop_training = True


@keras.saving.register_keras_serializable(package="keras_lottery")
class OffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step + offset)``: lets a fresh optimizer continue a learning-rate
    schedule from the rewind point instead of from step 0."""

    def __init__(self, schedule, offset: int):
        self.schedule = (
            keras.optimizers.schedules.deserialize(schedule)
            if isinstance(schedule, dict)
            else schedule
        )
        self.offset = int(offset)

    def __call__(self, step):
        return self.schedule(keras.ops.add(step, self.offset))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "offset": self.offset,
        }
