"""The methods' Keras callbacks, one concept each; all deep-copyable
(they hold no model until ``set_model``), as Keras Tuner and IMP copy them.

- :class:`RewindCheckpoint`: capture the full state at a rewind point;
- :class:`StopAtIteration`: end ``fit`` after an exact number of steps;
- :class:`TrainingRecorder`: count steps, keep the best-validation weights;
- :class:`TemperatureSchedule`, :class:`SparsityMonitor`,
  :class:`StopOnNonFiniteLogits`: Continuous Sparsification's soft masks;
- :func:`phase_callbacks`: a user's callbacks copied for one training phase of a
  method (a round's ticket or control), TensorBoard logging to its own folder.

Pruning inside ``fit`` (``GradualPruning``, ``PruningSummaries``) lives in
:mod:`keras_lottery.gradual`.

Example:

>>> capture = RewindCheckpoint("500it")
>>> model.fit(x, y, epochs=10, callbacks=[capture, StopAtIteration(2000)])
>>> restore_state(model, capture.state)
"""

from __future__ import annotations

import copy
import math
import os
import warnings

import keras
import numpy as np
from keras import ops

from keras_lottery._messages import logger, print_msg
from keras_lottery.gradual import optimizer_iterations
from keras_lottery.pruning import sync_state
from keras_lottery.rewind import capture_state
from keras_lottery.soft_masks import (
    check_temperature,
    remaining_fraction,
    set_temperature,
    soft_layers,
)
from keras_lottery.steps import Step


class RewindCheckpoint(keras.callbacks.Callback):
    """Captures the full model state at a rewind point of the first training run.

    ``step`` is counted from the start of *this* ``fit``: ``"500it"`` is after the
    500th optimizer update of this fit (read from ``optimizer.iterations``, so a
    resumed optimizer's earlier updates do not count), ``"2ep"`` after this fit's
    second epoch (whatever ``initial_epoch`` is), ``0`` before the first update.
    ``state`` holds the captured arrays once training has passed ``step``. With
    ``steps_per_execution = k > 1`` an iteration point inside an execution is
    captured at the end of that execution (up to ``k - 1`` updates late; ``late``
    says by how many). A point that training never reached (``fit`` ended or was
    stopped first) leaves ``state`` at ``None`` and is reported loudly by a
    ``RuntimeWarning`` at the end of ``fit``. Deep-copyable (it holds no model
    until ``set_model``).

    >>> capture = RewindCheckpoint("2ep")
    >>> model.fit(x, y, epochs=10, initial_epoch=5, callbacks=[capture])
    >>> capture.state is not None   # captured after epoch 7 (this fit's 2nd)
    True
    """

    def __init__(self, step="0it"):
        super().__init__()
        self.step = Step.parse(step)
        self.state: list[np.ndarray] | None = None
        self.late = 0
        self._start = 0
        self._iterations = 0
        self._epochs = 0
        self._first_epoch = None

    def on_train_begin(self, logs=None):
        self.state, self.late = None, 0
        self._start = optimizer_iterations(self.model)
        self._iterations, self._epochs, self._first_epoch = 0, 0, None
        if self.step.amount == 0:
            self.state = capture_state(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._iterations = optimizer_iterations(self.model) - self._start
        if (
            self.state is None
            and self.step.unit == "it"
            and self._iterations >= self.step.amount
        ):
            self.late = self._iterations - self.step.amount
            self.state = capture_state(self.model)

    def on_epoch_end(self, epoch, logs=None):
        self._epochs = epoch - (self._first_epoch or 0) + 1
        if (
            self.state is None
            and self.step.unit == "ep"
            and self._epochs == self.step.amount
        ):
            self.state = capture_state(self.model)

    def on_train_end(self, logs=None):
        if self.state is None:
            message = (
                f"RewindCheckpoint: the rewind point {self.step} was never reached; "
                f"this fit ran {self._iterations} iterations and {self._epochs} "
                "complete epochs (counted from its start), so no state was "
                "captured (state is None). Train longer or pick an earlier point."
            )
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)


def phase_callbacks(callbacks, phase: str, verbose: int = 0) -> list:
    """Deep copies of ``callbacks`` for one training phase (``phase`` like
    ``"round_003/ticket"`` or ``"round_003/random_reinit"``): each
    ``keras.callbacks.TensorBoard`` among them logs to ``<its log_dir>/<phase>``,
    so rounds and controls do not overwrite one ``train/`` folder. With
    ``verbose`` it prints which phase starts training, so the epoch lines that
    follow can be told apart.

    >>> phase_callbacks([keras.callbacks.TensorBoard("logs")], "round_001/ticket")[
    ...     0].log_dir
    'logs/round_001/ticket'
    """
    copies = copy.deepcopy(list(callbacks))
    for callback in copies:
        if isinstance(callback, keras.callbacks.TensorBoard):
            callback.log_dir = os.path.join(callback.log_dir, *phase.split("/"))
    if verbose:
        print_msg(f"[keras_lottery] training {phase}")
    return copies


def phase_name(round: int, branch: str) -> str:
    """``"round_003/ticket"``: the phase of ``branch`` (the ticket, a control or a
    search) in round ``round``."""
    return f"round_{round:03d}/{branch}"


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


class TrainingRecorder(keras.callbacks.Callback):
    """Counts this ``fit``'s optimizer steps and (if ``keep_best``) keeps the
    weights of the epoch with the lowest validation loss in ``state``.

    >>> recorder = TrainingRecorder(keep_best=True)
    >>> model.fit(x, y, validation_data=(xv, yv), epochs=5, callbacks=[recorder])
    >>> recorder.steps, recorder.best
    """

    def __init__(self, keep_best: bool):
        super().__init__()
        self.keep_best = keep_best
        self.steps, self.state, self.best = 0, None, np.inf

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss")
        if self.keep_best and loss is not None and loss < self.best:
            self.best, self.state = loss, capture_state(self.model)


# --------------------------------------------------------------------------- soft masks


class TemperatureSchedule(keras.callbacks.Callback):
    """Anneals beta within one ``fit``: 1 at the first epoch, multiplied by
    ``final ** (1 / (epochs - 1))`` every epoch, ``final`` at the last one
    (the authors' schedule). Deep-copyable.

    >>> soft.fit(x, y, epochs=85, callbacks=[TemperatureSchedule(200.0, 85)])
    """

    def __init__(self, final_temperature: float = 200.0, epochs: int = 2):
        super().__init__()
        check_temperature(final_temperature)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
            raise ValueError(
                f"The temperature schedule needs epochs >= 2 per round; got {epochs!r}."
            )
        self.final_temperature = float(final_temperature)
        self.epochs = epochs
        self._first = None

    def temperature(self, epoch_in_round: int) -> float:
        """beta at the start of epoch ``epoch_in_round`` (0-based)."""
        e = min(max(epoch_in_round, 0), self.epochs - 1)
        return self.final_temperature ** (e / (self.epochs - 1))

    def on_train_begin(self, logs=None):
        self._first = None
        set_temperature(self.model, 1.0)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first = epoch
        sync_state(self.model)
        set_temperature(self.model, self.temperature(epoch - self._first))


class SparsityMonitor(keras.callbacks.Callback):
    """Adds ``mask_remaining`` (share of soft-masked weights with s > 0) and
    ``temperature`` to each epoch's logs, so they land in ``history``."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        sync_state(self.model)
        layers = soft_layers(self.model)
        logs["mask_remaining"] = remaining_fraction(self.model)
        logs["temperature"] = float(ops.convert_to_numpy(layers[0].temperature))


class StopOnNonFiniteLogits(keras.callbacks.Callback):
    """Stops ``fit`` at the end of an epoch whose mask logits (or loss) are not
    finite; ``bad`` names the first offending layer (``None`` if all is well)."""

    def __init__(self):
        super().__init__()
        self.bad = None

    def on_train_begin(self, logs=None):
        self.bad = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.bad = f"the loss ({loss}) at epoch {epoch + 1}"
        sync_state(self.model)
        for layer in soft_layers(self.model):
            values = np.asarray(ops.convert_to_numpy(layer.mask_logits))
            if not np.all(np.isfinite(values)):
                self.bad = f"the mask logits of '{layer.name}' at epoch {epoch + 1}"
                break
        if self.bad is not None:
            self.model.stop_training = True
