"""Continuous Sparsification ticket searches as Keras Tuner trials.

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

import keras_tuner

from keras_lottery import paths
from keras_lottery.config import RunConfig
from keras_lottery.methods import registry
from keras_lottery.runs import runner


class CSHyperModel(keras_tuner.HyperModel):
    """A Keras Tuner hypermodel over Continuous Sparsification's s0 and lambda.

    Args:
        config: a ``method: cs`` run config (everything but the tuned values).
        mask_initial_values: candidate s0 values (default: the config's).
        penalties: candidate lambda values (default: the config's).
        out: root folder of the trials' run folders.
        verbose: passed to the runs (1 prints progress).
    """

    def __init__(
        self,
        config: RunConfig,
        *,
        mask_initial_values=None,
        penalties=None,
        out: str = "runs",
        verbose: int = 0,
        name: str | None = None,
    ):
        if config.method != "cs":
            raise ValueError(
                f"CSHyperModel tunes Continuous Sparsification runs; the config has "
                f"method {config.method!r} (set method: cs)."
            )
        super().__init__(name=name)
        self.config = config
        self.mask_initial_values = _candidates(
            mask_initial_values, config.cs.mask_initial_value, "mask_initial_values"
        )
        self.penalties = _candidates(penalties, config.cs.penalty, "penalties")
        if any(p < 0 for p in self.penalties):
            raise ValueError(f"penalties must be >= 0; got {self.penalties}.")
        self.out = out
        self.verbose = verbose

    @property
    def objective(self) -> keras_tuner.Objective:
        """Maximize the ticket's final validation accuracy."""
        return keras_tuner.Objective("val_accuracy", direction="max")

    def trial_config(self, hp) -> RunConfig:
        """The run config of a trial (the config with the trial's s0 and lambda)."""
        s0 = hp.Choice("mask_initial_value", self.mask_initial_values)
        penalty = hp.Choice("penalty", self.penalties)
        cs = dataclasses.replace(
            self.config.cs, mask_initial_value=float(s0), penalty=float(penalty)
        )
        return dataclasses.replace(self.config, cs=cs)

    def run_dir(self, hp) -> str:
        return runner.run_dir_for(self.trial_config(hp), self.out)

    def ticket_path(self, hp) -> str:
        return paths.cs_ticket(self.run_dir(hp))

    def build(self, hp):
        config = self.trial_config(hp)
        recipe, model = runner.prepare(config)
        self._prepared = (config, recipe, model)
        return model

    def fit(self, hp, model, *args, **kwargs):
        """Runs the trial's CS search and ticket training (``args``/``kwargs``
        from ``tuner.search`` are not used: the config names the data)."""
        config = self.trial_config(hp)
        prepared = getattr(self, "_prepared", None)
        ready = None
        if prepared is not None and prepared[0] == config and prepared[2] is model:
            ready = prepared[1:]
        directory = runner.run(config, self.out, verbose=self.verbose, prepared=ready)
        self._prepared = None
        with open(paths.result(directory)) as handle:
            result = json.load(handle)
        return metrics(result)


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
