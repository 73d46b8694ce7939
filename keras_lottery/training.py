"""Training from step k: the one mechanism every method here retrains with.

IMP's pruned rounds, its controls, the controls run later as branches and the
copies of an instability analysis all train a model from some step ``k`` of a
run to its end ``T`` the same way (open_lth's discipline):

- a **fresh optimizer** compiled from the compile config (no momentum or Adam
  state carries over);
- the learning-rate schedule **continues from step k** (``OffsetSchedule``);
- epoch-indexed callbacks see ``initial_epoch = k // steps_per_epoch``, and when
  ``k`` is not a whole number of epochs ``StopAtIteration`` ends training after
  exactly ``T - k`` steps.

Example:

>>> record = train_from_step(model, 500, compile_config=model.get_compile_config(),
...                          x=x, y=y, epochs=10, batch_size=60,
...                          test_data=(x_test, y_test))
>>> record.steps, record.test["accuracy"]
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import keras
import numpy as np

from keras_lottery import distributed
from keras_lottery.callbacks import StopAtIteration, TrainingRecorder
from keras_lottery.guards import StopOnDivergence
from keras_lottery.rewind import capture_state
from keras_lottery.schedules import OffsetSchedule


@dataclass
class TrainingRecord:
    """What one training run (a ticket or a control) reached."""

    history: dict[str, list[float]]
    epochs: int
    steps: int
    wall_time: float
    best_epoch: int | None
    final: dict[str, float]
    best: dict[str, float]
    test: dict[str, float] | None

    def summary(self) -> str:
        """``test accuracy 0.9812, 12.3s`` (``None`` without test data), for
        progress messages.

        >>> record.summary()
        'test accuracy 0.9812, 12.3s'
        """
        accuracy = (self.test or {}).get("accuracy")
        shown = "None" if accuracy is None else f"{accuracy:.4f}"
        return f"test accuracy {shown}, {self.wall_time:.1f}s"


def infer_steps_per_epoch(x, fit_kwargs: Mapping) -> int:
    """Optimizer steps per epoch for these ``fit`` arguments (as Keras counts them)."""
    if fit_kwargs.get("steps_per_epoch"):
        return int(fit_kwargs["steps_per_epoch"])
    if hasattr(x, "cardinality"):  # tf.data.Dataset
        n = int(x.cardinality())
        if n > 0:
            return n
        raise ValueError(
            "The dataset's length is unknown or infinite: pass steps_per_epoch."
        )
    if (
        hasattr(x, "__len__")
        and hasattr(x, "__getitem__")
        and not isinstance(x, (np.ndarray, list, tuple, dict))
    ):
        return len(x)  # keras.utils.PyDataset
    leaf = x
    while isinstance(leaf, (list, tuple, dict)):
        leaf = next(iter(leaf.values())) if isinstance(leaf, dict) else leaf[0]
    n = int(np.shape(leaf)[0])
    split = fit_kwargs.get("validation_split") or 0.0
    if split:
        n = int(math.floor(n * (1.0 - split)))
    batch_size = fit_kwargs.get("batch_size") or 32
    return math.ceil(n / batch_size)


def train_from_step(
    model,
    start: int,
    *,
    compile_config: dict,
    x=None,
    y=None,
    epochs: int,
    callbacks: Sequence = (),
    test_data=None,
    keep_best: bool = False,
    phase: str | None = "training",
    **fit_kwargs,
) -> TrainingRecord:
    """Trains ``model`` over steps ``start``..T with a fresh optimizer.

    Args:
        model: the model, already holding the state to start from (weights,
            masks); it is re-compiled from ``compile_config``.
        start: the step ``k`` training starts at (0 = from scratch).
        compile_config: ``model.get_compile_config()`` of the recipe; its
            learning-rate schedule is shifted to continue from ``start``.
        x, y, epochs, **fit_kwargs: ``model.fit`` arguments for the *whole* run
            (``T = epochs * steps_per_epoch``); do not pass ``initial_epoch``.
        callbacks: used as given (copy them first if they hold state).
        test_data: ``(x, y)`` or a dataset evaluated after training.
        keep_best: evaluate ``test_data`` with the weights of the epoch of
            lowest validation loss instead of the final ones (the model keeps
            its final weights either way).
        phase: what is training, named by the
            :class:`~keras_lottery.errors.DivergenceError` raised at the first
            epoch with a non-finite loss or weights
            (:class:`~keras_lottery.guards.StopOnDivergence`); ``None`` leaves
            the check to the caller.

    Returns a :class:`TrainingRecord`.
    """
    steps_per_epoch = infer_steps_per_epoch(x, fit_kwargs)
    total = epochs * steps_per_epoch
    if not 0 <= start < total:
        raise ValueError(
            f"Cannot train from step {start}: training has {total} steps "
            f"({epochs} epochs x {steps_per_epoch}); the start must be in "
            f"[0, {total})."
        )
    model.compile_from_config(offset_compile_config(compile_config, start))
    return fit_and_record(
        model,
        start,
        x=x,
        y=y,
        epochs=epochs,
        callbacks=callbacks,
        test_data=test_data,
        keep_best=keep_best,
        phase=phase,
        **fit_kwargs,
    )


def fit_and_record(
    model,
    start: int = 0,
    *,
    x=None,
    y=None,
    epochs: int,
    callbacks: Sequence = (),
    test_data=None,
    keep_best: bool = False,
    phase: str | None = "training",
    **fit_kwargs,
) -> TrainingRecord:
    """Trains the compiled ``model`` over steps ``start``..T with its current
    optimizer (:func:`train_from_step` without the re-compilation) and records
    the outcome; the arguments are :func:`train_from_step`'s."""
    steps_per_epoch = infer_steps_per_epoch(x, fit_kwargs)
    total = epochs * steps_per_epoch
    best = TrainingRecorder(keep_best=keep_best)
    callbacks = list(callbacks) + [best]
    if phase is not None:
        callbacks.append(StopOnDivergence(phase))
    if start % steps_per_epoch:
        callbacks.append(StopAtIteration(total - start))
    # Multi-worker runs: every worker must start from the same state.
    distributed.check_in_sync(model, phase or "training")
    began = time.perf_counter()
    history = model.fit(
        x,
        y,
        epochs=epochs,
        initial_epoch=start // steps_per_epoch,
        callbacks=callbacks,
        **fit_kwargs,
    )
    wall = time.perf_counter() - began
    logs = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    trained_epochs = len(next(iter(logs.values()), []))
    best_index = _argmin(logs.get("val_loss"))
    first_epoch = start // steps_per_epoch
    final = {k: v[-1] for k, v in logs.items() if v}
    at_best = (
        {k: v[best_index] for k, v in logs.items()} if best_index is not None else {}
    )
    test = None
    if test_data is not None:
        if best.state is not None:
            trained = capture_state(model)
            assign_all(model, best.state)
        test = evaluate(model, test_data)
        if best.state is not None:
            assign_all(model, trained)
    return TrainingRecord(
        history=logs,
        epochs=trained_epochs,
        steps=best.steps,
        wall_time=wall,
        best_epoch=None if best_index is None else first_epoch + best_index,
        final=final,
        best=at_best,
        test=test,
    )


def metric_of(training: Mapping | None, metric: str = "accuracy"):
    """``metric`` of a training record (a :class:`TrainingRecord` as a dict):
    on the test data, else the final epoch's (training, then validation)
    value; ``None`` if absent.

    >>> metric_of(record.to_dict(), "accuracy")
    """
    if not training:
        return None
    for source in ("test", "final"):
        values = training.get(source) or {}
        for key in (metric, f"val_{metric}") if source == "final" else (metric,):
            if key in values:
                return values[key]
    return None


def evaluate(model, data) -> dict[str, float]:
    """``model.evaluate`` on ``(x, y)`` or a dataset, as a dict of floats."""
    if isinstance(data, tuple) and len(data) == 2:
        result = model.evaluate(*data, verbose=0, return_dict=True)
    else:
        result = model.evaluate(data, verbose=0, return_dict=True)
    return {k: float(v) for k, v in result.items()}


def assign_all(model, state) -> None:
    """Writes ``state`` (``model.weights`` order, masks included) as it is."""
    for variable, value in zip(model.weights, state, strict=True):
        variable.assign(value)


def offset_compile_config(config: dict, start: int) -> dict:
    """The compile config with the learning-rate schedule shifted to start at
    ``start`` (a fresh optimizer otherwise restarts the schedule at 0)."""
    config = copy.deepcopy(config)
    optimizer = config.get("optimizer")
    if start and isinstance(optimizer, dict):
        lr = optimizer.get("config", {}).get("learning_rate")
        if isinstance(lr, dict):
            schedule = OffsetSchedule(lr, start)
            optimizer["config"]["learning_rate"] = keras.saving.serialize_keras_object(
                schedule
            )
    return config


def _argmin(values):
    if not values:
        return None
    return int(np.nanargmin(values)) if not np.all(np.isnan(values)) else None
