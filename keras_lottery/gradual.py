"""Pruning inside ``model.fit``: the :class:`GradualPruning` callback applies a
pruning schedule with the library's exact-count magnitude pruning, and
:class:`PruningSummaries` reports densities (to ``logs`` and TensorBoard).

When masks change: a schedule's prune step ``s`` means "once ``s`` optimizer
updates have been taken", which is tfmot's timing (its masks for step ``s`` are
computed before update ``s + 1``). The callback reads ``optimizer.iterations``
at the end of every batch (never a counter of its own), so resuming from a
checkpoint or with ``initial_epoch`` continues the schedule where it was. With
``steps_per_execution = k > 1``, Keras calls the callback once per ``k`` steps:
if one or more prune steps were crossed, the masks are set once, to the density
of the latest of them, right after that execution (at most ``k - 1`` updates
late). Masks are recomputed on batch ends only, so they are already in place
when an epoch-end save (``ModelCheckpoint``, Keras Tuner) runs.

Example:

>>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=100)
>>> pruning = GradualPruning(schedule, exclude=["output"])
>>> model.fit(x, y, epochs=10, callbacks=[pruning, PruningSummaries(pruning),
...                                       keras.callbacks.TensorBoard("logs")])
>>> pruning.events[-1]["density"]
0.2
"""

from __future__ import annotations

import os

import keras
import numpy as np
from keras import ops

from keras_lottery import pruning as masks_lib
from keras_lottery._messages import print_msg
from keras_lottery.errors import ConfigError, MissingExtraError
from keras_lottery.guards import check_finite
from keras_lottery.pruning_schedules import get as get_schedule


def optimizer_iterations(model) -> int:
    """The optimizer's update count, read without a full state sync mid-fit.

    On JAX, ``fit`` holds the live optimizer state outside the variables during
    an epoch (the variables are emptied); syncing all of it back on every batch
    would cost a copy per step, so the count is read from that state.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ConfigError(
            "GradualPruning needs a compiled model: call model.compile(...) first."
        )
    live = getattr(model, "_jax_state", None)
    if live and not getattr(model, "_jax_state_synced", True):
        values = live.get("optimizer_variables")
        for variable, value in zip(optimizer.variables, values or (), strict=False):
            if variable is optimizer.iterations:
                return int(np.asarray(value))
    return int(ops.convert_to_numpy(optimizer.iterations))


class GradualPruning(keras.callbacks.Callback):
    """Prunes during ``fit`` by magnitude, following a pruning schedule.

    At each prune step the selected weights are pruned to the schedule's density
    of their *dense* size (exact counts: ``round(density * n)`` kept per pool),
    masks only shrink, and the optimizer's slots of pruned weights are zeroed
    (as ``pruning.set_masks`` does), so they stay exactly zero.

    Args:
        schedule: a :class:`~keras_lottery.pruning_schedules.PruningSchedule`.
        scope: ``"global"`` (one threshold over the selected layers) or
            ``"layerwise"`` (each layer to the density on its own).
        layers: masked layer names or fnmatch patterns to prune (default: all).
        exclude: names or patterns never pruned (e.g. the first conv).
        layer_schedules: ``{name or pattern: schedule}`` for layers pruned on
            their own schedule (each is its own pool, even under global scope).
        pattern: structured sparsity for the kept weights: ``"2:4"`` (N:M) or
            ``"1x4"``/``"4x1"`` (blocks); see ``keras_lottery.sparsity_patterns``.
        verbose: 1 prints a line at each pruning event.

    ``events`` lists the pruning events of the last ``fit``: ``{"step",
    "density", "layers": {name: density}}`` with densities of the whole model's
    masked weights and of each layer after the event. Deep-copyable (holds no
    model until ``set_model``), so Keras Tuner can copy it per trial.

    A non-finite loss or weight stops training with
    :class:`~keras_lottery.errors.DivergenceError` at the end of its epoch (or at
    the prune step that meets it), instead of pruning nothing.
    """

    def __init__(
        self,
        schedule,
        *,
        scope: str = "global",
        layers=None,
        exclude=(),
        layer_schedules=None,
        pattern: str | None = None,
        verbose: int = 0,
    ):
        super().__init__()
        if scope not in masks_lib.SCOPES:
            raise ConfigError(
                f"scope must be one of {masks_lib.SCOPES}; got {scope!r}."
            )
        self.schedule = get_schedule(schedule)
        self.scope = scope
        self.layers = None if layers is None else list(layers)
        self.exclude = list(exclude)
        self.layer_schedules = {
            k: get_schedule(v) for k, v in (layer_schedules or {}).items()
        }
        self.pattern = pattern
        if pattern is not None:
            from keras_lottery.sparsity_patterns import parse_pattern

            parse_pattern(pattern)
        self.verbose = verbose
        self.events: list[dict] = []
        self._last = None
        self._plan = None

    # ----------------------------------------------------------------- callbacks

    def on_train_begin(self, logs=None):
        self.events = []
        self._plan = self._resolve(self.model)
        step = optimizer_iterations(self.model)
        # Catch up with the schedule up to the current step (resuming, or a
        # prune step at 0): idempotent when the masks are already there.
        self._prune_if_due(-1, step, catching_up=True)
        self._last = step

    def on_epoch_end(self, epoch, logs=None):
        # Pruning NaN kernels already raises; this also stops a run whose loss or
        # weights went non-finite between prune steps, naming the epoch.
        check_finite(self.model, "training with GradualPruning", epoch + 1, logs)

    def on_train_batch_end(self, batch, logs=None):
        step = optimizer_iterations(self.model)
        if self._last is None:  # fit without on_train_begin (never in Keras)
            self._last = step - 1
        self._prune_if_due(self._last, step)
        self._last = step

    # ----------------------------------------------------------------- pruning

    def _resolve(self, model):
        names = masks_lib.layer_names(model)
        if not names:
            masks_lib.check_layer_names(model, [])  # raises: no masked layer
        own = {}
        for pattern, schedule in self.layer_schedules.items():
            for name in _match(names, [pattern], "layer_schedules"):
                own[name] = schedule
        excluded = set(_match(names, self.exclude, "exclude"))
        chosen = names if self.layers is None else _match(names, self.layers, "layers")
        main = [n for n in chosen if n not in excluded and n not in own]
        own = {n: s for n, s in own.items() if n not in excluded}
        if not main and not own:
            raise ConfigError(
                f"GradualPruning has no layer left to prune: layers={self.layers}, "
                f"exclude={self.exclude}; the model's masked layers are {names}."
            )
        return main, own

    def _prune_if_due(self, after: int, upto: int, catching_up=False) -> None:
        main, own = self._plan
        due = {}
        main_step = self.schedule.last_prune_step(after, upto) if main else None
        for name, schedule in own.items():
            step = schedule.last_prune_step(after, upto)
            if step is not None:
                due[name] = schedule.density(step)
        if main_step is None and not due:
            return
        selected = (main if main_step is not None else []) + list(due)
        density = self.schedule.density(main_step) if main_step is not None else 1.0
        masks_lib.sync_state(self.model)
        new = masks_lib.magnitude_masks_to_density(
            self.model,
            _clip(density),
            scope=self.scope,
            layers=selected,
            layer_densities={n: _clip(d) for n, d in due.items()},
            pattern=self.pattern,
        )
        if catching_up and all(
            np.array_equal(new[name], mask)
            for name, mask in masks_lib.get_masks(self.model).items()
            if name in new
        ):
            return  # resumed with the masks already in place: not an event
        masks_lib.set_masks(self.model, new)
        self._record(upto)

    def _record(self, step: int) -> None:
        report = masks_lib.sparsity_report(self.model)
        event = {
            "step": int(step),
            "density": report.fraction_remaining,
            "layers": {layer.name: layer.fraction_remaining for layer in report.layers},
        }
        self.events.append(event)
        if self.verbose:
            print_msg(
                f"[keras_lottery] step {step}: pruned to "
                f"{100 * event['density']:.2f}% weights remaining"
            )


class PruningSummaries(keras.callbacks.Callback):
    """Reports densities: adds ``density`` (share of masked weights kept) and
    ``density/<layer>`` to each epoch's ``logs`` (so ``History``, ``CSVLogger``
    and a ``keras.callbacks.TensorBoard`` listed *after* it record them), and with
    ``log_dir`` writes them, and every pruning event of ``pruning`` (a
    :class:`GradualPruning`) at its optimizer step, to ``<log_dir>/pruning`` as
    TensorBoard scalars (``pruning/density``, ``pruning/density/<layer>``).

    Use the TensorBoard callback's ``log_dir`` so both show in one TensorBoard.

    >>> pruning = GradualPruning(schedule)
    >>> model.fit(x, y, callbacks=[pruning, PruningSummaries(pruning, "logs"),
    ...                            keras.callbacks.TensorBoard("logs")])
    """

    def __init__(self, pruning: GradualPruning | None = None, log_dir=None):
        super().__init__()
        self.pruning = pruning
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._written = 0
        self._writer = None

    def on_train_begin(self, logs=None):
        self._written = 0
        if self.log_dir is not None and self._writer is None:
            self._writer = _summary_writer(os.path.join(self.log_dir, "pruning"))

    def on_epoch_end(self, epoch, logs=None):
        masks_lib.sync_state(self.model)
        report = masks_lib.sparsity_report(self.model)
        values = {"density": report.fraction_remaining}
        values.update(
            {f"density/{x.name}": x.fraction_remaining for x in report.layers}
        )
        if logs is not None:
            logs.update(values)
        if self._writer is None:
            return
        events = self.pruning.events[self._written :] if self.pruning else []
        self._written += len(events)
        step = optimizer_iterations(self.model)
        for event in events:
            self._write(event["step"], event["density"], event["layers"])
        if not events or events[-1]["step"] != step:
            self._write(step, values["density"], _layers(values))

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, step, density, layers) -> None:
        import tensorflow as tf

        with self._writer.as_default(step=int(step)):
            tf.summary.scalar("pruning/density", density)
            for name, value in layers.items():
                tf.summary.scalar(f"pruning/density/{name}", value)
        self._writer.flush()

    def __deepcopy__(self, memo):
        # A live summary writer cannot be copied; a copy opens its own.
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            setattr(clone, key, None if key == "_writer" else _deepcopy(value, memo))
        return clone


def _summary_writer(folder):
    try:
        import tensorflow as tf
    except ImportError as error:  # pragma: no cover - TF is a dependency
        raise MissingExtraError(
            "PruningSummaries(log_dir=...) writes TensorBoard files with "
            "TensorFlow's tf.summary; install tensorflow."
        ) from error
    return tf.summary.create_file_writer(folder)


def _deepcopy(value, memo):
    import copy

    return copy.deepcopy(value, memo)


def _layers(values: dict) -> dict:
    return {k.split("/", 1)[1]: v for k, v in values.items() if "/" in k}


def _match(names, patterns, key) -> list[str]:
    import fnmatch

    found = []
    for pattern in patterns:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            raise ConfigError(
                f"GradualPruning {key} entry {pattern!r} matches no masked layer; "
                f"the model's masked layers are {names}."
            )
        found += [n for n in matched if n not in found]
    return found


def _clip(density: float) -> float:
    # Float round-off of 1 - sparsity must not leave [0, 1].
    return min(1.0, max(0.0, float(density)))
