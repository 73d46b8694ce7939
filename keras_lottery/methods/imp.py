"""Iterative magnitude pruning (IMP) with weight rewinding.

Frankle & Carbin (2019) train, prune p% of the remaining weights, reset the
survivors to their initial values and repeat. Frankle et al. ("Stabilizing the
LTH", "Linear Mode Connectivity and the LTH") rewind to an early iterate W_k
instead of W_0. This module does both through ordinary ``model.fit``:

- Round 0 trains the dense model for T steps and captures the full state (every
  variable, batch-norm statistics included) at step k.
- Round r >= 1 prunes down to ``(1 - p) ** r`` of the dense weights (exact counts,
  per layer or globally, per-layer rates allowed), restores the step-k state
  bitwise for the survivors, compiles a *fresh optimizer* from the user's compile
  settings and trains steps k..T: the learning-rate schedule continues from step k
  (``OffsetSchedule``; epoch-indexed callbacks see ``initial_epoch = k // S``), as
  open_lth does. Adam's bias correction restarts with the fresh optimizer.
- With ``rewind_mode="learning_rate"`` (Renda et al., "Comparing Rewinding
  and Fine-tuning in Neural Network Pruning") round r >= 1 keeps the trained
  weights of round r - 1 for the survivors instead of restoring step k; only
  the learning-rate schedule (and the step count) restart from step k. The
  round's ticket then holds those trained, pruned weights, so branches retrain
  it the same way.
- Each round also trains the controls named in ``baselines`` with the same
  recipe (:mod:`keras_lottery.controls`; by default random reinitialization,
  same masks and a fresh initialization, and random pruning, same per-layer
  counts at random positions with the rewound weights).

Example:

>>> model = keras_lottery.models.get("lenet_300_100")
>>> model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> imp = IterativeMagnitudePruning(fraction=0.2, rounds=5, rewind="0it",
...                                 scope="layerwise", layer_fractions={"output": 0.1})
>>> result = imp.run(model, x, y, epochs=10, batch_size=60, validation_split=0.1,
...                  test_data=(x_test, y_test))
>>> print(result.table()); result.ticket.save("ticket.npz")
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Mapping

import keras

from keras_lottery import controls, paths, pruning
from keras_lottery._io import load_arrays
from keras_lottery._messages import print_msg
from keras_lottery.callbacks import RewindCheckpoint, phase_callbacks, phase_name
from keras_lottery.config import PruningConfig, RunConfig
from keras_lottery.errors import ConfigError
from keras_lottery.methods import preflight, registry
from keras_lottery.methods.checkpoints import IMPCheckpoints, phase_records
from keras_lottery.methods.figures import plot_rounds
from keras_lottery.methods.records import IMPResult, RoundRecord
from keras_lottery.methods.tables import format_round_table, summary_line
from keras_lottery.models import layers_in_scope
from keras_lottery.rewind import capture_state, restore_state
from keras_lottery.steps import Step
from keras_lottery.ticket import Ticket
from keras_lottery.training import (
    TrainingRecord,
    assign_all,
    infer_steps_per_epoch,
    metric_of,
    train_from_step,
)
from keras_lottery.tweaks.retraining import RetrainPlan

_DEFAULTS = PruningConfig()


class IterativeMagnitudePruning:
    """Runs IMP with rewinding on a compiled Keras model through ``model.fit``.

    Args:
        fraction: share of the remaining weights pruned per round, in (0, 1).
        rounds: number of pruning rounds (round 0, the dense run, not counted).
        target_sparsity: alternative to ``rounds``: the fewest rounds that reach
            at least this sparsity at rate ``fraction``.
        scope: ``"layerwise"`` (default; Frankle & Carbin's LeNet/Conv-N) or
            ``"global"`` (one threshold across layers, open_lth).
        layers: names of the masked layers to prune (default: every masked
            layer; :meth:`from_config` resolves a registry scope name).
        exclude: names never pruned.
        layer_fractions: per-layer rates overriding ``fraction``.
        rewind: rewind point: ``0`` (reset to init), ``"500it"``, ``"2ep"``.
        rewind_mode: ``"weights"`` (default: survivors restart from their
            values at the rewind point) or ``"learning_rate"`` (they keep their
            trained values; the learning-rate schedule restarts at the rewind
            point).
        baselines: controls trained every round, by name (see
            :mod:`keras_lottery.controls`; default: ``random_reinit`` and
            ``random_prune``, as in a config).
        retrain: a :class:`~keras_lottery.tweaks.retraining.RetrainPlan`: the
            sparse-retraining tweaks every pruned round and control trains
            with (never the dense round, which is the KD teacher); LRsI
            rescales the rewind state once, before the first pruned round.
        evaluate_at: ``"final"`` (weights at the end of training) or ``"best"``
            (weights of the epoch with the lowest validation loss, Frankle &
            Carbin's early-stopping criterion) for the recorded test metrics.
        seed: seeds every round (``seed + round``) so runs are reproducible and
            resumable.
        checkpoint_dir: if set, each finished round is saved there and a new
            ``run`` resumes after the last finished round.
        extra_rewinds: further rewind points captured during the dense round
            and saved (state and round-0 ticket) under
            ``checkpoint_dir/extra_rewinds/<step>/``: the dense round does not
            depend on the rewind point, so runs that differ only in ``rewind``
            can start from it (see ``runner.seed_dense_round``). Needs
            ``checkpoint_dir``.
        verbose: 1 prints one summary line per round.
    """

    def __init__(
        self,
        *,
        fraction: float = _DEFAULTS.fraction,
        rounds: int | None = _DEFAULTS.rounds,
        target_sparsity: float | None = _DEFAULTS.target_sparsity,
        scope: str = _DEFAULTS.scope,
        layers: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        layer_fractions: Mapping[str, float] | None = None,
        rewind=_DEFAULTS.rewind,
        baselines: Iterable[str] | None = None,
        evaluate_at: str = _DEFAULTS.evaluate_at,
        rewind_mode: str = _DEFAULTS.rewind_mode,
        retrain=None,
        seed: int = 0,
        checkpoint_dir: str | None = None,
        extra_rewinds: Iterable = (),
        verbose: int = 1,
    ):
        # The config sections own every default and value check.
        settings = PruningConfig(
            fraction=fraction,
            rounds=rounds,
            target_sparsity=target_sparsity,
            scope=scope,
            exclude=list(exclude),
            layer_fractions=dict(layer_fractions or {}),
            rewind=rewind,
            evaluate_at=evaluate_at,
            rewind_mode=rewind_mode,
        )
        settings.check_for_run()
        run = RunConfig(
            baselines=RunConfig().baselines if baselines is None else list(baselines),
            seed=seed,
        )
        self.rounds = rounds_for(fraction, rounds, target_sparsity)
        self.fraction = fraction
        self.scope = scope
        self.layers = None if layers is None else list(layers)
        self.exclude = settings.exclude
        self.layer_fractions = settings.layer_fractions
        self.rewind = Step.parse(rewind)
        self.baselines = tuple(run.baselines)
        self.evaluate_at = evaluate_at
        self.rewind_mode = rewind_mode
        self.retrain = retrain
        if retrain and retrain.rescales_init and rewind_mode != "weights":
            raise ConfigError(
                "'retrain.tweaks' lrsi rescales the weights a round rewinds to: "
                "it needs 'pruning.rewind_mode' weights; got "
                f"{rewind_mode!r}."
            )
        self.seed = int(seed)
        self.checkpoint_dir = checkpoint_dir
        self.extra_rewinds = []
        for step in map(Step.parse, extra_rewinds):
            if step != self.rewind and step not in self.extra_rewinds:
                self.extra_rewinds.append(step)
        if self.extra_rewinds and not checkpoint_dir:
            raise ValueError(
                "extra_rewinds are saved in the checkpoint folder: pass "
                "checkpoint_dir too."
            )
        self.verbose = verbose

    @classmethod
    def from_config(
        cls,
        config: RunConfig,
        model,
        *,
        checkpoint_dir: str | None = None,
        verbose: int = 1,
        extra_rewinds: Iterable = (),
    ) -> IterativeMagnitudePruning:
        """The driver of ``config`` (``method: imp``) for ``model``: the
        ``pruning`` section with its layer scope and ``layer_fractions``
        patterns resolved against ``model``'s masked layers, the run's
        ``baselines`` and ``seed``.

        >>> imp = IterativeMagnitudePruning.from_config(config, model)
        """
        p = config.pruning
        layers = layers_in_scope(model, p.layers)
        pruning.check_layer_names(model, layers, "pruning.layers")
        pruning.check_layer_names(model, p.exclude, "pruning.exclude")
        return cls(
            fraction=p.fraction,
            rounds=p.rounds,
            target_sparsity=p.target_sparsity,
            scope=p.scope,
            layers=layers,
            exclude=p.exclude,
            layer_fractions=pruning.expand_patterns(
                model, p.layer_fractions, "pruning.layer_fractions"
            ),
            rewind=p.rewind,
            baselines=config.baselines,
            evaluate_at=p.evaluate_at,
            rewind_mode=p.rewind_mode,
            retrain=RetrainPlan.from_config(config) or None,
            seed=config.seed,
            checkpoint_dir=checkpoint_dir,
            verbose=verbose,
            extra_rewinds=extra_rewinds,
        )

    # ------------------------------------------------------------------ run

    def run(
        self,
        model,
        x=None,
        y=None,
        *,
        test_data=None,
        model_fn: Callable | None = None,
        **fit_kwargs,
    ) -> IMPResult:
        """Runs every round and returns the records and the final ticket.

        Args:
            model: a compiled Keras model with masked layers.
            x, y, **fit_kwargs: passed to ``model.fit`` every round (``epochs``
                is required; ``callbacks`` are deep-copied per round).
            test_data: ``(x, y)`` or a dataset evaluated after each training.
            model_fn: zero-argument factory returning a freshly initialized,
                compiled copy of ``model``; needed for the baselines only when
                ``model`` is subclassed (otherwise ``keras.models.clone_model``
                is used).
        """
        pruning.sparsity_report(model)  # raises if there is nothing to prune
        if not getattr(model, "compiled", False):
            raise ValueError(
                "Compile the model first: IMP re-creates a fresh optimizer "
                "from its compile settings every round."
            )
        epochs = fit_kwargs.pop("epochs", None)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(
                f"fit argument `epochs` must be a positive int; got {epochs!r}."
            )
        if "initial_epoch" in fit_kwargs:
            raise ValueError(
                "Do not pass initial_epoch: IMP sets it from the rewind point."
            )
        steps_per_epoch = infer_steps_per_epoch(x, fit_kwargs)
        self._check_rewinds(epochs, steps_per_epoch)
        data = (x, y, test_data, fit_kwargs)
        return _Job(self, model, data, model_fn, epochs, steps_per_epoch).run()

    def _check_rewinds(self, epochs: int, steps_per_epoch: int) -> None:
        total = epochs * steps_per_epoch
        for step in [self.rewind, *self.extra_rewinds]:
            at = step.iterations(steps_per_epoch)
            if at >= total:
                raise ValueError(
                    f"Rewind point {step} (= {at} iterations) is not before the end "
                    f"of training ({epochs} epochs x {steps_per_epoch} steps = "
                    f"{total} iterations). Choose an earlier rewind point or train "
                    "longer."
                )

    def densities(self, round_index: int) -> tuple[float, dict[str, float]]:
        """Target density (vs. dense) after ``round_index`` rounds, overall and
        per overridden layer."""
        overall = (1.0 - self.fraction) ** round_index
        per_layer = {
            n: (1.0 - f) ** round_index for n, f in self.layer_fractions.items()
        }
        return overall, per_layer


def rounds_for(
    fraction: float, rounds: int | None, target_sparsity: float | None
) -> int:
    """The number of rounds: ``rounds``, or the fewest that reach at least
    ``target_sparsity`` at rate ``fraction`` (values checked by
    :class:`~keras_lottery.config.PruningConfig`)."""
    PruningConfig(
        fraction=fraction, rounds=rounds, target_sparsity=target_sparsity
    ).check_for_run()
    if rounds is not None:
        return rounds
    return math.ceil(math.log(1 - target_sparsity) / math.log(1 - fraction) - 1e-9)


class _Job:
    """The state of one ``IterativeMagnitudePruning.run`` call."""

    def __init__(self, imp, model, data, model_fn, epochs, steps_per_epoch):
        self.imp, self.model, self.model_fn = imp, model, model_fn
        self.x, self.y, self.test_data, fit_kwargs = data
        self.callbacks = copy.deepcopy(list(fit_kwargs.pop("callbacks", None) or []))
        self.fit_kwargs = fit_kwargs
        self.epochs, self.steps_per_epoch = epochs, steps_per_epoch
        self.k = imp.rewind.iterations(steps_per_epoch)
        self.compile_config = model.get_compile_config()
        self.store = IMPCheckpoints(imp.checkpoint_dir) if imp.checkpoint_dir else None
        self.extra_states = {}
        # The state the last trained round started from (its ticket's weights):
        # the rewind state, or with learning-rate rewinding the pruned weights
        # of the round before.
        self.start_state = None
        self.teacher = None  # the dense network, for the KD ticket
        self.plan = imp.retrain or RetrainPlan()
        # The state of the network the round's ticket trained as, when the
        # plan transforms it (soft activation, extra skips); else None.
        self.transformed = None

    def run(self) -> IMPResult:
        records, rewind_state, start = [], None, 0
        if self.store is not None:
            records, rewind_state = self.store.resume(self.model)
            start = len(records)
            if start and self.imp.verbose:
                print_msg(
                    f"[keras_lottery] resuming after round {start - 1} "
                    f"from {self.store.root}"
                )
        if start and self.plan.needs_teacher:
            self._teacher()  # before the seeds, as after a dense round
        for r in range(start, self.imp.rounds + 1):
            keras.utils.set_random_seed(self.imp.seed + r)
            if r == 0:
                record, rewind_state = self._dense_round()
                self.start_state = rewind_state
            else:
                if r == max(start, 1):  # the first pruned round of this call
                    rewind_state = self._rescaled(r, rewind_state)
                record = self._pruned_round(r, rewind_state)
            records.append(record)
            if self.store is not None:
                if r == 0:
                    for step, state in self.extra_states.items():
                        self.store.save_extra_rewind(
                            step, state, self._ticket(0, record, state, step)
                        )
                self.store.save_round(
                    self.model,
                    record,
                    rewind_state,
                    self._ticket(r, record, self.start_state),
                    transformed=self.transformed,
                )
            if self.imp.verbose:
                print_msg(summary_line(record.to_dict()))
        final = records[-1]
        if self.start_state is None:  # resumed after the last round: read it
            ticket = Ticket.load(paths.round_ticket(self.store.root, final.round))
        else:
            ticket = self._ticket(final.round, final, self.start_state)
        return IMPResult(records, ticket, self._network(final.round))

    def _network(self, r):
        """The round's ticket as it trained, when the plan transforms it."""
        state = self.transformed
        if state is None and self.store is not None and self.plan.transforms:
            path = paths.transformed(paths.round_dir(self.store.root, r))
            if r > 0 and os.path.exists(path):  # resumed after the last round
                state = load_arrays(path, "a round's transformed.npz")
        return None if state is None else self.plan.trained_network(self.model, state)

    # ------------------------------------------------------------------ rounds

    def _dense_round(self):
        capture = RewindCheckpoint(self.imp.rewind)
        extra = [RewindCheckpoint(step) for step in self.imp.extra_rewinds]
        record = self._train(
            self.model,
            0,
            phase_name(0, "ticket"),
            "IMP round 0 (dense)",
            extra_callbacks=[capture, *extra],
        )
        self.extra_states = {c.step: c.state for c in extra}
        if self.plan.needs_teacher:
            self.teacher = self._copy_with_state(capture_state(self.model))
        return self._round_record(0, record, {}), capture.state

    def _pruned_round(self, r, rewind_state):
        self.transformed = None
        density, layer_densities = self.imp.densities(r)
        if self.imp.rewind_mode == "learning_rate":
            # Unpruned trained values: what controls with other masks keep.
            self.start_state = capture_state(self.model)
        pruning.prune_to_density(
            self.model,
            density,
            scope=self.imp.scope,
            layers=self.imp.layers,
            exclude=self.imp.exclude,
            layer_densities=layer_densities,
        )
        if self.imp.rewind_mode == "weights":
            restore_state(self.model, rewind_state)
            self.start_state = rewind_state
        pruned = Ticket.from_model(
            self.model, weights=self.start_state, model_config=None
        )
        record = self._train(
            self.model,
            self.k,
            phase_name(r, "ticket"),
            f"IMP round {r} (ticket)",
            retraining=True,
            keep_transformed=True,
        )
        baselines = {}
        for i, name in enumerate(self.imp.baselines):
            seed, mask_seed = controls.in_run_seeds(self.imp.seed, r, i, mask_phase=r)
            control = controls.control_model(
                name, pruned, self._fresh_model, seed, mask_seed
            )
            baselines[name] = self._train(
                control,
                self.k,
                phase_name(r, name),
                f"IMP round {r} (control {name})",
                retraining=True,
            )
        return self._round_record(r, record, baselines)

    def _rescaled(self, r, rewind_state):
        """LRsI: the rewind state rescaled once per call, before masking (the
        dense round's masks are all ones); seeded, so a resume recomputes it."""
        if not self.plan.rescales_init:
            return rewind_state
        keras.utils.set_random_seed(self.imp.seed + 999_983)
        dense = self._copy_with_state(rewind_state)
        self.plan.rescale(dense, self.x if self.y is None else (self.x, self.y))
        keras.utils.set_random_seed(self.imp.seed + r)
        return capture_state(dense)

    def _teacher(self):
        """The trained dense network (round 0), built when KD first needs it."""
        if self.teacher is None:
            if self.store is None:
                raise ConfigError(
                    "'retrain.tweaks' kd needs round 0's trained network: run "
                    "IMP from round 0 or with checkpoint_dir."
                )
            state = load_arrays(
                paths.round_trained(self.store.root, 0), "round 0's trained.npz"
            )
            self.teacher = self._copy_with_state(state)
        return self.teacher

    def _copy_with_state(self, state):
        copy_ = self._fresh_model()
        assign_all(copy_, state)
        return copy_

    def _fresh_model(self):
        if self.model_fn is not None:
            return self.model_fn()
        try:
            fresh = keras.models.clone_model(self.model)
        except Exception as error:
            raise ValueError(
                "Baselines need a freshly initialized copy of the model; this model "
                f"cannot be cloned ({error}). Pass model_fn=... to run()."
            ) from error
        fresh.compile_from_config(self.compile_config)
        return fresh

    def _round_record(self, r, training, baselines) -> RoundRecord:
        report = pruning.sparsity_report(self.model)
        return RoundRecord(
            round=r,
            fraction_remaining=report.fraction_remaining,
            layers_remaining=report.layers_remaining,
            ticket=training,
            baselines=baselines,
        )

    def _ticket(self, r, record, rewind_state, step=None) -> Ticket:
        step = self.imp.rewind if step is None else step
        return Ticket.from_model(
            self.model,
            weights=rewind_state,
            method="imp",
            round=r,
            rewind=str(step),
            rewind_iterations=step.iterations(self.steps_per_epoch),
            scope=self.imp.scope,
            fraction=self.imp.fraction,
            **({"rewind_mode": "learning_rate"} if self._lr_rewinding(r) else {}),
            metrics={"test": record.ticket.test, "final": record.ticket.final},
        )

    def _lr_rewinding(self, r) -> bool:
        return r > 0 and self.imp.rewind_mode == "learning_rate"

    # ------------------------------------------------------------------ training

    def _train(
        self,
        model,
        start,
        phase,
        label,
        extra_callbacks=(),
        retraining=False,
        keep_transformed=False,
    ) -> TrainingRecord:
        """Trains steps start..T with a fresh optimizer and records the outcome;
        ``phase`` (``round_003/ticket``) names the TensorBoard subfolder, ``label``
        (``IMP round 3 (ticket)``) the phase in a divergence error.
        ``retraining``: a ticket or control, trained with the retrain tweaks;
        ``keep_transformed``: the round's ticket, whose transformed network's
        state is kept in ``self.transformed`` for its round folder."""
        if retraining and self.plan:
            prepared = self.plan.prepare(model, self.compile_config, self._teacher)
            record = self._fit(
                prepared.trainee,
                start,
                prepared.compile_config,
                phase,
                label,
                [*extra_callbacks, *prepared.callbacks],
            )
            self.plan.finish(prepared, model)
            if keep_transformed and self.plan.transforms:
                self.transformed = capture_state(prepared.student)
            return record
        return self._fit(
            model, start, self.compile_config, phase, label, extra_callbacks
        )

    def _fit(self, model, start, compile_config, phase, label, extra_callbacks):
        return train_from_step(
            model,
            start,
            compile_config=compile_config,
            x=self.x,
            y=self.y,
            epochs=self.epochs,
            callbacks=phase_callbacks(self.callbacks, phase, self.imp.verbose)
            + list(extra_callbacks),
            test_data=self.test_data,
            keep_best=self.imp.evaluate_at == "best",
            phase=label,
            **self.fit_kwargs,
        )


# ------------------------------------------------------------------ IMP runs


def prepare(config: RunConfig, recipe, model):
    """The model an IMP run trains: the registry model, compiled by the recipe."""
    recipe.compile(model)
    return model


def summarize(run_dir: str) -> dict:
    """The finished rounds' records of an IMP run folder (``result.json``
    without the config)."""
    rounds = phase_records(run_dir, paths.ROUND)
    if not rounds:
        raise FileNotFoundError(
            f"{run_dir} holds no finished round ({paths.round_record(run_dir, 0)})."
        )
    return {"method": "imp", "rounds": rounds}


def points(summary: Mapping) -> list[dict]:
    """One point per round: weights remaining, test accuracy of the ticket and
    of each control, and the epochs spent so far."""
    out, epochs = [], 0
    for record in summary["rounds"]:
        epochs += record["ticket"]["epochs"]
        out.append(
            {
                "phase": f"round {record['round']}",
                "weights_remaining": record["fraction_remaining"],
                "accuracy": metric_of(record["ticket"], "accuracy"),
                "val_accuracy": record["ticket"]["final"].get("val_accuracy"),
                "controls": {
                    name: metric_of(training, "accuracy")
                    for name, training in record.get("baselines", {}).items()
                },
                "epochs": epochs,
            }
        )
    return out


registry.register(
    registry.Method(
        name="imp",
        driver=IterativeMagnitudePruning,
        prepare=prepare,
        summarize=summarize,
        points=points,
        table=lambda summary, metric="accuracy": format_round_table(
            summary["rounds"], metric
        ),
        plot=lambda summary, path: plot_rounds(summary["rounds"], path),
        plot_name=paths.ACCURACY_PLOT,
        driver_options=("extra_rewinds",),
        preflight=preflight.imp,
    )
)
