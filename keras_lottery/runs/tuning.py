"""Keras Tuner hypermodels: Continuous Sparsification ticket searches as trials
(:class:`CSHyperModel`) and pruning inside ``fit`` (:class:`GradualPruningHyperModel`).

Each trial is one CS run of a config with the trial's ``cs.mask_initial_value``
(s0) and ``cs.penalty`` (lambda): ``build`` returns the compiled soft-mask model
that the run trains, and ``fit`` runs the search and the ticket training in the
run folder that ``keras-lottery run`` would use for the same config (so trials
are resumable, a finished trial is not retrained, and the ticket lies at
``<run folder>/ticket.npz``). ``fit`` reports the ticket's ``val_accuracy``,
``test_accuracy``, ``weights_remaining`` (all masked weights),
``weights_remaining_in_scope`` (the soft-masked ones) and ``epochs``.

Because every trial starts from the same seed, the grid produces a family of
tickets of different sparsities from one starting network. Keras Tuner runs
trials one after another (or across machines in its distributed mode);
``keras-lottery sweep`` runs them as parallel processes instead.

Example:

>>> import keras_tuner
>>> hypermodel = CSHyperModel(load_config("configs/cs_resnet20_cifar10.yaml"),
...                           mask_initial_values=[-0.1, 0.0, 0.1], out="runs")
>>> tuner = keras_tuner.GridSearch(hypermodel, objective=hypermodel.objective,
...                                directory="tuning", project_name="cs")
>>> tuner.search()
>>> best = tuner.oracle.get_best_trials(1)[0]
>>> hypermodel.ticket_path(best.hyperparameters)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import keras_tuner

from keras_lottery import paths
from keras_lottery._messages import print_msg
from keras_lottery.config import RunConfig
from keras_lottery.errors import ConfigError, RunFolderError
from keras_lottery.gradual import GradualPruning
from keras_lottery.methods import registry
from keras_lottery.pruning_schedules import IterativeRounds, OneShot, PolynomialDecay
from keras_lottery.runs import runner
from keras_lottery.runs.retrain import phase_settings, trained_network
from keras_lottery.ticket import Ticket


class _RunHyperModel(keras_tuner.HyperModel):
    """A method's run as Keras Tuner trials: the trial's config is the config with
    the trial's hyperparameters; ``fit`` runs it in its run folder."""

    method = ""

    def __init__(self, config, out, verbose, name, reuse_finished):
        if config.method != self.method:
            raise ValueError(
                f"{type(self).__name__} tunes '{self.method}' runs; the config has "
                f"method {config.method!r} (set method: {self.method})."
            )
        super().__init__(name=name)
        self.config = config
        self.out = out
        self.verbose = verbose
        self.reuse_finished = reuse_finished
        self._ran: set[str] = set()

    @property
    def objective(self) -> keras_tuner.Objective:
        """Maximize the ticket's final validation accuracy."""
        return keras_tuner.Objective("val_accuracy", direction="max")

    def trial_config(self, hp) -> RunConfig:
        raise NotImplementedError

    def run_dir(self, hp) -> str:
        return runner.run_dir_for(self.trial_config(hp), self.out)

    def build(self, hp):
        """The compiled model the trial's run trains; once the trial's run has
        finished, the network ``tuner.get_best_models`` loads the trial's trained
        weights into."""
        config = self.trial_config(hp)
        directory = runner.run_dir_for(config, self.out)
        if os.path.exists(paths.result(directory)):
            return self._final_model(config, directory)
        recipe, model = runner.prepare(config)
        self._prepared = (config, recipe, model)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Runs the trial; returns its metrics (see :func:`metrics`).

        The config names the data: ``tuner.search()`` takes no ``x``/``y``
        (passing them is an error rather than silently ignored). The trained
        network's weights are written where Keras Tuner's checkpoint callback
        would have written them, so ``tuner.get_best_models()`` returns them.
        """
        _refuse_data(args, kwargs)
        config = self.trial_config(hp)
        directory = runner.run_dir_for(config, self.out)
        self._check_reuse(directory)
        prepared = getattr(self, "_prepared", None)
        ready = None
        if prepared is not None and prepared[0] == config and prepared[2] is model:
            ready = prepared[1:]
        directory = runner.run(config, self.out, verbose=self.verbose, prepared=ready)
        self._prepared = None
        self._ran.add(os.path.abspath(directory))
        with open(paths.result(directory)) as handle:
            result = json.load(handle)
        targets = [
            c.filepath
            for c in kwargs.get("callbacks") or []
            if type(c).__name__ == "SaveBestEpoch"
        ]
        if targets:  # the callback never runs: no fit of ours is the tuner's
            final = self._final_model(config, directory)
            for path in targets:
                final.save_weights(path)
        values = metrics(result)
        if values["weights_remaining"] == 0:
            print_msg(
                f"[keras_lottery] WARNING: trial {dict(hp.values)} pruned every "
                f"weight (0% remaining, {directory}); its accuracy is chance level."
            )
        return values

    def _final_model(self, config, directory):
        """The network the trial's run trained last, with its trained values
        (transformed when the config's ``retrain`` tweaks transform it)."""
        raise NotImplementedError

    def _check_reuse(self, directory: str) -> None:
        if not os.path.exists(paths.result(directory)):
            return
        if os.path.abspath(directory) in self._ran:
            return
        if not self.reuse_finished:
            raise TrialRunFolderError(
                f"The trial's run folder {directory} already holds a finished run "
                "from an earlier search (Keras Tuner's overwrite=True resets the "
                "tuner's project, not the run folders under out=). Delete it, pass "
                "a fresh out=, or reuse_finished=True to reuse it."
            )
        print_msg(
            f"[keras_lottery] reusing the finished run in {directory} "
            "(reuse_finished=False retrains or refuses instead)"
        )


class CSHyperModel(_RunHyperModel):
    """A Keras Tuner hypermodel over Continuous Sparsification's s0 and lambda.

    ``get_best_models`` returns the trials' trained ticket networks.

    Args:
        config: a ``method: cs`` run config (everything but the tuned values).
        mask_initial_values: candidate s0 values (default: the config's).
        penalties: candidate lambda values (default: the config's).
        out: root folder of the trials' run folders.
        verbose: passed to the runs (1 prints progress).
        reuse_finished: a trial whose run folder already holds a finished run
            from before this hypermodel's search reuses it, with a message
            (True), or is refused with ``RunFolderError`` (False).
    """

    method = "cs"

    def __init__(
        self,
        config: RunConfig,
        *,
        mask_initial_values=None,
        penalties=None,
        out: str = "runs",
        verbose: int = 0,
        name: str | None = None,
        reuse_finished: bool = True,
    ):
        super().__init__(config, out, verbose, name, reuse_finished)
        self.mask_initial_values = _candidates(
            mask_initial_values, config.cs.mask_initial_value, "mask_initial_values"
        )
        self.penalties = _candidates(penalties, config.cs.penalty, "penalties")
        if any(p < 0 for p in self.penalties):
            raise ValueError(f"penalties must be >= 0; got {self.penalties}.")

    def trial_config(self, hp) -> RunConfig:
        """The run config of a trial (the config with the trial's s0 and lambda)."""
        s0 = hp.Choice("mask_initial_value", self.mask_initial_values)
        penalty = hp.Choice("penalty", self.penalties)
        cs = dataclasses.replace(
            self.config.cs, mask_initial_value=float(s0), penalty=float(penalty)
        )
        return dataclasses.replace(self.config, cs=cs)

    def ticket_path(self, hp) -> str:
        return paths.cs_ticket(self.run_dir(hp))

    def _final_model(self, config, directory):
        ticket = Ticket.load(paths.cs_ticket(directory)).build_model()
        return trained_network(ticket, config.retrain, paths.cs_ticket_dir(directory))


class IMPHyperModel(_RunHyperModel):
    """A Keras Tuner hypermodel over IMP's pruning rate, rewind point and scope.

    Each trial is one ``keras-lottery run`` of the config with the trial's
    ``pruning.fraction``, ``pruning.rewind`` and ``pruning.scope`` (candidates
    default to the config's), in its own resumable run folder under ``out``;
    its metrics are its last round's (:func:`metrics`), and ``get_best_models``
    returns each trial's network as trained in its last round (masks included).

    >>> hypermodel = IMPHyperModel(config, fractions=[0.2, 0.5],
    ...                            rewinds=["0it", "500it"], out="runs")
    >>> tuner = keras_tuner.GridSearch(hypermodel, objective=hypermodel.objective)
    >>> tuner.search()
    """

    method = "imp"

    def __init__(
        self,
        config: RunConfig,
        *,
        fractions=None,
        rewinds=None,
        scopes=None,
        out: str = "runs",
        verbose: int = 0,
        name: str | None = None,
        reuse_finished: bool = True,
    ):
        super().__init__(config, out, verbose, name, reuse_finished)
        self.fractions = _candidates(fractions, config.pruning.fraction, "fractions")
        self.rewinds = [str(r) for r in (rewinds or [config.pruning.rewind])]
        self.scopes = list(scopes or [config.pruning.scope])
        for fraction in self.fractions:  # invalid values fail here, not mid-search
            for rewind in self.rewinds:
                for scope in self.scopes:
                    dataclasses.replace(
                        config.pruning, fraction=fraction, rewind=rewind, scope=scope
                    )

    def trial_config(self, hp) -> RunConfig:
        """The run config of a trial (the trial's fraction, rewind and scope)."""
        pruning_config = dataclasses.replace(
            self.config.pruning,
            fraction=float(hp.Choice("fraction", self.fractions)),
            rewind=hp.Choice("rewind", self.rewinds),
            scope=hp.Choice("scope", self.scopes),
        )
        return dataclasses.replace(self.config, pruning=pruning_config)

    def _final_model(self, config, directory):
        with open(paths.result(directory)) as handle:
            last = json.load(handle)["rounds"][-1]["round"]
        _, model = runner.prepare(config)
        settings = phase_settings(config, last)
        return trained_network(model, settings, paths.round_dir(directory, last))


class IdlePause:
    """A tuner mixin for Keras Tuner's distributed mode: a worker whose request
    for a trial came back empty (``IDLE``: the grid is handed out, other
    workers' trials still run) waits ``idle_pause`` seconds before asking
    again, instead of re-asking the chief in a tight loop that takes a CPU
    core from the trials still running.

    >>> class Grid(IdlePause, keras_tuner.GridSearch): ...
    """

    idle_pause = 0.05

    def pre_create_trial(self):
        if getattr(self, "_asked_in_vain", False):
            time.sleep(self.idle_pause)
        self._asked_in_vain = True  # until on_trial_begin says otherwise
        super().pre_create_trial()

    def on_trial_begin(self, trial):
        self._asked_in_vain = False
        super().on_trial_begin(trial)


class TicketGridSearch(IdlePause, keras_tuner.GridSearch):
    """``keras_tuner.GridSearch`` for the hypermodels of this module, on one
    machine or in Keras Tuner's distributed mode (the same script as chief and
    workers, told apart by ``KERASTUNER_TUNER_ID``): waiting workers pause
    between requests (:class:`IdlePause`). See docs/distributed.md.

    >>> tuner = TicketGridSearch(CSHyperModel(config, out="/shared/runs"),
    ...                          objective="val_accuracy",
    ...                          directory="/shared/tuning", project_name="cs")
    >>> tuner.search()
    """


class TrialConfigError(ConfigError, keras_tuner.errors.FatalError):
    """A ``ConfigError`` that ends the whole search (Keras Tuner would otherwise
    log it and go on to the next trial)."""


class TrialRunFolderError(RunFolderError, keras_tuner.errors.FatalError):
    """A ``RunFolderError`` that ends the whole search."""


def _refuse_data(args, kwargs) -> None:
    data = [k for k in ("x", "y", "validation_data") if kwargs.get(k) is not None]
    if args or data:
        raise TrialConfigError(
            "CSHyperModel trials train on the data their config names (the data: "
            "section); call tuner.search() without x, y or validation_data "
            f"(got {len(args)} positional argument(s) and {data or 'no'} keywords)."
        )


def metrics(result: dict) -> dict[str, float]:
    """A finished run's ``result.json`` as tuner metrics: its last ticket's
    validation and test accuracy, weights remaining and the epochs spent."""
    point = registry.get(result["method"]).points(result)[-1]
    nan = float("nan")
    remaining = point["weights_remaining"]
    return {
        "val_accuracy": float(_or(point["val_accuracy"], nan)),
        "test_accuracy": float(_or(point["accuracy"], nan)),
        "weights_remaining": remaining,
        "weights_remaining_in_scope": point.get(
            "weights_remaining_in_scope", remaining
        ),
        "epochs": float(point["epochs"]),
    }


def _or(value, default):
    return default if value is None else value


def _candidates(values, default, what) -> list[float]:
    values = [default] if values is None else list(values)
    if not values or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in values
    ):
        raise ValueError(f"{what} must be a non-empty list of numbers; got {values!r}.")
    return [float(v) for v in values]


class GradualPruningHyperModel(keras_tuner.HyperModel):
    """Keras Tuner over pruning inside ``fit``: the final sparsity, the schedule
    (``"polynomial"``: Zhu & Gupta, ``"one_shot"``, ``"iterative"``: IMP's
    geometric rounds without rewinding) and the scope are hyperparameters; the
    trial trains ``build_model(hp)`` (a compiled model with masked layers) on
    the data given to ``tuner.search`` with a
    :class:`~keras_lottery.gradual.GradualPruning` callback added.

    Masks are set on batch ends, so they are in place when the tuner's epoch-end
    checkpoint is written and ``get_best_models`` returns pruned models.

    >>> hypermodel = GradualPruningHyperModel(build, sparsities=[0.5, 0.8],
    ...                                       end_step=1000)
    >>> tuner = keras_tuner.GridSearch(hypermodel, objective="val_accuracy")
    >>> tuner.search(x, y, validation_data=(xv, yv), epochs=5)
    """

    SCHEDULES = ("polynomial", "one_shot", "iterative")

    def __init__(
        self,
        build_model,
        *,
        sparsities=(0.8,),
        schedules=("polynomial",),
        scopes=("global",),
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        exclude=(),
        name: str | None = None,
    ):
        super().__init__(name=name)
        unknown = [s for s in schedules if s not in self.SCHEDULES]
        if unknown or not schedules:
            raise ConfigError(
                f"schedules must be a non-empty subset of {self.SCHEDULES}; "
                f"got {list(schedules)}."
            )
        self.build_model = build_model
        self.sparsities = [float(s) for s in sparsities]
        self.schedules, self.scopes = list(schedules), list(scopes)
        self.begin_step, self.end_step = int(begin_step), int(end_step)
        self.frequency, self.exclude = int(frequency), list(exclude)
        self.schedule(self.sparsities[0], self.schedules[0])  # validates early

    def schedule(self, sparsity: float, kind: str):
        """The pruning schedule of a trial."""
        if kind == "polynomial":
            return PolynomialDecay(
                0.0, sparsity, self.begin_step, self.end_step, frequency=self.frequency
            )
        if kind == "one_shot":
            return OneShot(sparsity, at_step=self.begin_step)
        # IMP's rounds of 20% (of the remaining weights) reaching ~sparsity.
        rounds = max(1, round(math.log(1.0 - sparsity) / math.log(0.8)))
        fraction = 1.0 - (1.0 - sparsity) ** (1.0 / rounds)
        steps = max(1, (self.end_step - self.begin_step) // max(1, rounds - 1))
        return IterativeRounds(fraction, rounds, steps, begin_step=self.begin_step)

    def build(self, hp):
        return self.build_model(hp)

    def pruning(self, hp) -> GradualPruning:
        """The trial's pruning callback."""
        sparsity = hp.Choice("final_sparsity", self.sparsities)
        kind = hp.Choice("schedule", self.schedules)
        scope = hp.Choice("scope", self.scopes)
        return GradualPruning(
            self.schedule(float(sparsity), kind), scope=scope, exclude=self.exclude
        )

    def fit(self, hp, model, *args, callbacks=None, **kwargs):
        callbacks = [self.pruning(hp), *(callbacks or [])]
        return model.fit(*args, callbacks=callbacks, **kwargs)
