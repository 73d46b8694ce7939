"""Continuous Sparsification (Savarese, Silva & Maire, NeurIPS 2020).

Ticket search with soft masks instead of iterative magnitude pruning:

1. :func:`~keras_lottery.conversion.soften` turns the chosen layers of a model
   into soft-mask layers (``w * sigmoid(beta * s) / sigmoid(s0)``, see
   :mod:`keras_lottery.layers.soft`);
   the layers add ``lambda * sum(m)`` to the loss.
2. Each of ``rounds`` search rounds trains the soft model for the recipe's
   epochs while :class:`TemperatureSchedule` anneals beta from 1 to
   ``final_temperature`` (multiplied every epoch). The full model state at the
   rewind point (default: epoch 2 of the first round) is captured. Between
   rounds the logits are reset, ``s <- min(beta * s, s0)`` (the paper) or
   ``min(s, s0)`` (the authors' code, which sets beta back to 1 before the
   reset); see :func:`keras_lottery.soft_masks.reset_logits` for how the two
   differ. The optimizer (momentum included) persists across search rounds
   and the learning-rate schedule restarts, as in the authors' code; weights
   are not rewound between rounds.
3. :func:`~keras_lottery.soft_masks.binarize` takes the hard mask ``1[s > 0]``
   (or, with ``target_sparsity``, the exact top-k logits over all soft layers).
4. Ticket mode rewinds every weight to the rewind point,
   :func:`~keras_lottery.conversion.harden` turns the soft layers back into
   ordinary masked layers with the hard mask, and the
   result is trained for one more round with a fresh optimizer (the authors'
   code builds a new SGD for it too). Prune mode
   keeps the trained weights and fine-tunes them instead. Either way the result
   is an ordinary :class:`~keras_lottery.ticket.Ticket`.

Example:

>>> model = models.get("cifar_resnet_20", bn_init="ones")
>>> soft = soften(model, models.pruning_scope(model, "cs"))
>>> soft.compile(CoupledSGD(0.1, momentum=0.9, nesterov=True,
...                         coupled_weight_decay=1e-4, exclude=["mask_logits"]),
...              "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> result = ContinuousSparsification(rounds=3).run(
...     soft, x, y, epochs=85, batch_size=128, validation_split=0.1,
...     test_data=(x_test, y_test))
>>> result.ticket.save("cs.ticket.npz")
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping

import keras
import numpy as np
from keras import ops

from keras_lottery import controls, paths, pruning
from keras_lottery._io import load_arrays
from keras_lottery._messages import print_msg
from keras_lottery.callbacks import (
    RewindCheckpoint,
    SparsityMonitor,
    StopOnNonFiniteLogits,
    TemperatureSchedule,
    phase_callbacks,
    phase_name,
)
from keras_lottery.config import CSConfig, RunConfig
from keras_lottery.conversion import harden, soften
from keras_lottery.errors import ConfigError, DivergenceError
from keras_lottery.methods import preflight, registry
from keras_lottery.methods.checkpoints import (
    CSCheckpoints,
    phase_records,
    read_record,
    verify_cs_ticket,
)
from keras_lottery.methods.figures import plot_search
from keras_lottery.methods.records import CSResult, SearchRoundRecord
from keras_lottery.methods.tables import format_cs_table, search_line, ticket_line
from keras_lottery.models import layers_in_scope
from keras_lottery.rewind import capture_state
from keras_lottery.soft_masks import (
    LOGITS,
    binarize,
    reset_logits,
    rewind_weights,
    soft_layers,
)
from keras_lottery.steps import Step
from keras_lottery.ticket import Ticket
from keras_lottery.training import (
    TrainingRecord,
    fit_and_record,
    infer_steps_per_epoch,
    metric_of,
    train_from_step,
)
from keras_lottery.tweaks.retraining import RetrainPlan

_DEFAULTS = CSConfig()

# --------------------------------------------------------------------------- driver


class ContinuousSparsification:
    """Runs a Continuous Sparsification search and trains the resulting ticket.

    Args:
        rounds: search rounds (default 3, the authors').
        final_temperature: beta at the last epoch of each round (default 200).
        rewind: where the ticket's weights come from: a point of the first round
            (``"2ep"``, ``"500it"``, ``0``); default epoch 2, the authors'.
        mode: ``"ticket"`` (rewind, then train the hard-masked network) or
            ``"prune"`` (fine-tune the trained weights with the hard mask).
        target_sparsity: if set, binarize to exactly this sparsity over the soft
            layers (top logits) instead of ``s > 0``.
        logit_reset: ``"paper"`` or ``"code"`` (see :func:`reset_logits`).
        baselines: controls trained like the ticket, by name (see
            :mod:`keras_lottery.controls`; default: ``random_reinit`` and
            ``random_prune``, as in a config).
        evaluate_at: ``"final"`` or ``"best"`` (lowest validation loss) weights
            for the recorded test metrics.
        retrain: a :class:`~keras_lottery.tweaks.retraining.RetrainPlan`: the
            sparse-retraining tweaks the ticket and its controls train with
            (not the search rounds); CS has no dense network, so no ``kd``,
            and no ``lrsi``.
        seed: seeds each phase (``seed + round``).
        checkpoint_dir: if set, each finished round is saved there and a new
            ``run`` resumes after the last finished one.
        verbose: 1 prints one summary line per phase.
    """

    def __init__(
        self,
        *,
        rounds: int = _DEFAULTS.rounds,
        final_temperature: float = _DEFAULTS.final_temperature,
        rewind=_DEFAULTS.rewind,
        mode: str = _DEFAULTS.mode,
        target_sparsity: float | None = _DEFAULTS.target_sparsity,
        logit_reset: str = _DEFAULTS.logit_reset,
        baselines: Iterable[str] | None = None,
        evaluate_at: str = _DEFAULTS.evaluate_at,
        retrain=None,
        seed: int = 0,
        checkpoint_dir: str | None = None,
        verbose: int = 1,
    ):
        if retrain and (retrain.needs_teacher or retrain.rescales_init):
            raise ConfigError(
                f"'retrain.tweaks' {retrain.settings.tweaks}: Continuous "
                "Sparsification has no dense round to teach (kd) and no dense "
                "initialization to rescale before masking (lrsi)."
            )
        self.retrain = retrain or RetrainPlan()
        # The config sections own every default and value check.
        CSConfig(
            rounds=rounds,
            final_temperature=final_temperature,
            rewind=rewind,
            mode=mode,
            target_sparsity=target_sparsity,
            logit_reset=logit_reset,
            evaluate_at=evaluate_at,
        )
        run = RunConfig(
            baselines=RunConfig().baselines if baselines is None else list(baselines),
            seed=seed,
        )
        self.baselines = tuple(run.baselines)
        self.rounds = rounds
        self.final_temperature = float(final_temperature)
        self.rewind = Step.parse(rewind)
        self.mode = mode
        self.target_sparsity = target_sparsity
        self.logit_reset = logit_reset
        self.evaluate_at = evaluate_at
        self.seed = int(seed)
        self.checkpoint_dir = checkpoint_dir
        self.verbose = verbose

    @classmethod
    def from_config(
        cls,
        config: RunConfig,
        model=None,
        *,
        checkpoint_dir: str | None = None,
        verbose: int = 1,
    ) -> ContinuousSparsification:
        """The driver of ``config`` (``method: cs``): the ``cs`` section, the
        run's ``baselines`` and ``seed`` (``model`` is not needed: the soft
        layers were chosen by :func:`prepare`).

        >>> search = ContinuousSparsification.from_config(config)
        """
        c = config.cs
        return cls(
            rounds=c.rounds,
            final_temperature=c.final_temperature,
            rewind=c.rewind,
            mode=c.mode,
            target_sparsity=c.target_sparsity,
            logit_reset=c.logit_reset,
            baselines=config.baselines,
            evaluate_at=c.evaluate_at,
            retrain=RetrainPlan.from_config(config) or None,
            seed=config.seed,
            checkpoint_dir=checkpoint_dir,
            verbose=verbose,
        )

    def run(self, model, x=None, y=None, *, test_data=None, **fit_kwargs) -> CSResult:
        """Searches, binarizes and trains the ticket; returns the records.

        Args:
            model: a compiled model with soft-mask layers (:func:`soften`);
                exclude ``"mask_logits"`` from its optimizer's weight decay.
            x, y, **fit_kwargs: passed to ``model.fit`` in every phase;
                ``epochs`` (>= 2) is the length of one round.
            test_data: ``(x, y)`` or a dataset evaluated after each phase.
        """
        if not soft_layers(model):
            raise ValueError(
                "The model has no soft-mask layer; convert it with "
                "keras_lottery.conversion.soften(model, layers)."
            )
        if not getattr(model, "compiled", False):
            raise ValueError("Compile the model first (see keras_lottery.methods.cs).")
        epochs = fit_kwargs.pop("epochs", None)
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
            raise ValueError(
                f"fit argument `epochs` (the length of one round) must be an int "
                f">= 2 for the temperature schedule; got {epochs!r}."
            )
        if "initial_epoch" in fit_kwargs:
            raise ValueError("Do not pass initial_epoch to a CS search.")
        steps_per_epoch = infer_steps_per_epoch(x, fit_kwargs)
        k = self.rewind.iterations(steps_per_epoch)
        if k >= epochs * steps_per_epoch:
            raise ValueError(
                f"Rewind point {self.rewind} (= {k} iterations) is not inside the "
                f"first round ({epochs} epochs x {steps_per_epoch} steps). Choose an "
                "earlier rewind point or longer rounds."
            )
        return _Search(self, model, x, y, test_data, fit_kwargs, epochs).run()


class _Search:
    """The state of one :meth:`ContinuousSparsification.run` call."""

    def __init__(self, cs, model, x, y, test_data, fit_kwargs, epochs):
        self.cs, self.model, self.x, self.y = cs, model, x, y
        self.test_data = test_data
        self.callbacks = copy.deepcopy(list(fit_kwargs.pop("callbacks", None) or []))
        self.fit_kwargs, self.epochs = fit_kwargs, epochs
        self.compile_config = model.get_compile_config()
        self.store = CSCheckpoints(cs.checkpoint_dir) if cs.checkpoint_dir else None
        self.transformed = None  # see _train_hard

    def run(self) -> CSResult:
        records, rewind_state = [], None
        if self.store is not None:
            records, rewind_state = self.store.resume_search(self.model)
            if records and self.cs.verbose:
                print_msg(
                    f"[keras_lottery] resuming CS after search round "
                    f"{len(records) - 1} from {self.store.root}"
                )
            if records and len(records) < self.cs.rounds:
                # Rounds are saved before the logit reset that follows them.
                reset_logits(self.model, self.cs.logit_reset)
        for r in range(len(records), self.cs.rounds):
            keras.utils.set_random_seed(self.cs.seed + r)
            record, captured = self._search_round(r)
            rewind_state = captured if r == 0 else rewind_state
            records.append(record)
            if self.store is not None:
                self.store.save_round(self.model, record, rewind_state)
            if self.cs.verbose:
                print_msg(search_line(record.to_dict()))
            if r + 1 < self.cs.rounds:
                reset_logits(self.model, self.cs.logit_reset)
        return self._train_ticket(records, rewind_state)

    # ------------------------------------------------------------------ search

    def _search_round(self, r):
        if r:
            self.model.optimizer.iterations.assign(0)  # restart the LR schedule
        temperature = TemperatureSchedule(self.cs.final_temperature, self.epochs)
        guard = StopOnNonFiniteLogits()
        extra = [temperature, SparsityMonitor(), guard]
        capture = None
        if r == 0:
            capture = RewindCheckpoint(self.cs.rewind)
            extra.insert(0, capture)
        training = fit_and_record(
            self.model,
            x=self.x,
            y=self.y,
            epochs=self.epochs,
            callbacks=phase_callbacks(
                self.callbacks, phase_name(r, "search"), self.cs.verbose
            )
            + extra,
            test_data=self.test_data,
            keep_best=self.cs.evaluate_at == "best",
            phase=None,  # the guard above also checks the mask logits
            **self.fit_kwargs,
        )
        if guard.bad is not None:
            where = (
                f"the last good checkpoint is search round {r - 1} in {self.store.root}"
                if self.store is not None and r > 0
                else "no round was saved"
            )
            raise DivergenceError(
                f"Continuous Sparsification stopped in search round {r}: non-finite "
                f"values in {guard.bad}. Lower the learning rate or the temperature; "
                f"{where}."
            )
        masks = binarize(self.model)
        return (
            SearchRoundRecord(
                round=r,
                fraction_remaining=_fraction(masks),
                layers_remaining={n: float(m.mean()) for n, m in masks.items()},
                final_temperature=float(
                    ops.convert_to_numpy(soft_layers(self.model)[0].temperature)
                ),
                training=training,
            ),
            capture.state if capture is not None else None,
        )

    # ------------------------------------------------------------------ ticket

    def _train_ticket(self, records, rewind_state) -> CSResult:
        if self.store is not None and self.store.ticket_done():
            result = self.store.load_result(records)
            result.network = self._saved_network(result.ticket)
            return result
        masks = binarize(self.model, self.cs.target_sparsity)
        if self.cs.mode == "ticket":
            rewind_weights(self.model, rewind_state)
        hard = harden(self.model, masks)  # compiled with a fresh optimizer
        start = capture_state(hard)
        ticket = self._ticket(hard, start, records)
        keras.utils.set_random_seed(self.cs.seed + self.cs.rounds)
        training = self._train_hard(hard, "ticket", "CS ticket")
        transformed = self.transformed
        baselines = {}
        for i, name in enumerate(self.cs.baselines):
            seed, mask_seed = controls.in_run_seeds(
                self.cs.seed, self.cs.rounds, i, mask_phase=None
            )
            control = controls.control_model(
                name, ticket, lambda: keras.models.clone_model(hard), seed, mask_seed
            )
            baselines[name] = self._train_hard(control, name, f"CS control {name}")
        ticket.metadata["metrics"] = {"test": training.test, "final": training.final}
        network = None
        if transformed is not None:
            network = self.cs.retrain.trained_network(hard, transformed)
        result = CSResult(records, training, ticket, baselines, network)
        if self.store is not None:
            self.store.save_result(hard, result, transformed)
        if self.cs.verbose:
            print_msg(ticket_line(result.to_dict()))
        return result

    def _saved_network(self, ticket):
        """The saved ticket as it trained, when the plan transforms it."""
        path = paths.transformed(paths.cs_ticket_dir(self.store.root))
        if not self.cs.retrain.transforms or not os.path.exists(path):
            return None
        state = load_arrays(path, "a CS ticket's transformed.npz")
        return self.cs.retrain.trained_network(ticket.build_model(), state)

    def _train_hard(self, model, phase: str, label: str) -> TrainingRecord:
        """One whole round with a fresh optimizer (the recipe's schedule from 0);
        ``phase`` (``ticket`` or a control) names the TensorBoard subfolder,
        ``label`` the phase in a divergence error. The ``retrain`` tweaks
        apply: the trained values end in ``model``, the state of the network
        it trained as in ``self.transformed`` when they transform it."""
        plan = self.cs.retrain
        prepared = plan.prepare(model, self.compile_config)
        record = train_from_step(
            prepared.trainee,
            0,
            compile_config=prepared.compile_config,
            x=self.x,
            y=self.y,
            epochs=self.epochs,
            callbacks=phase_callbacks(self.callbacks, phase, self.cs.verbose)
            + prepared.callbacks,
            test_data=self.test_data,
            keep_best=self.cs.evaluate_at == "best",
            phase=label,
            **self.fit_kwargs,
        )
        plan.finish(prepared, model)
        self.transformed = capture_state(prepared.student) if plan.transforms else None
        return record

    def _ticket(self, hard, start, records) -> Ticket:
        soft_names = [layer.name for layer in soft_layers(self.model)]
        masks = pruning.get_masks(hard)
        in_scope = {n: masks[n] for n in soft_names}
        return Ticket.from_model(
            hard,
            weights=start,
            method="cs",
            mode=self.cs.mode,
            round=len(records),
            rewind=str(self.cs.rewind) if self.cs.mode == "ticket" else None,
            rewind_iterations=0,  # CS trains the ticket for a whole round
            scope=soft_names,
            sparsity_in_scope=1.0 - _fraction(in_scope),
            threshold_sparsity=1.0 - records[-1].fraction_remaining,
            target_sparsity=self.cs.target_sparsity,
            mask_initial_value=soft_layers(self.model)[0].mask_initial_value,
            penalty=soft_layers(self.model)[0].mask_penalty,
            final_temperature=self.cs.final_temperature,
            logit_reset=self.cs.logit_reset,
            epochs_per_round=self.epochs,
        )


def _fraction(masks: Mapping[str, np.ndarray]) -> float:
    total = sum(m.size for m in masks.values())
    return sum(int(m.sum()) for m in masks.values()) / total


# --------------------------------------------------------------------------- CS runs


def prepare(config: RunConfig, recipe, model):
    """The model a CS run trains: the registry model with ``cs.layers`` soft-
    masked, compiled by the recipe without weight decay on the mask logits."""
    model = soften(
        model,
        layers_in_scope(model, config.cs.layers),
        mask_initial_value=config.cs.mask_initial_value,
        penalty=config.cs.penalty,
    )
    recipe.compile(model, exclude=[LOGITS])
    return model


def summarize(run_dir: str) -> dict:
    """The search rounds' records and the ticket record (``None`` until the
    ticket is trained) of a CS run folder (``result.json`` without the config)."""
    search = phase_records(run_dir, paths.SEARCH)
    ticket_dir = paths.cs_ticket_dir(run_dir)
    ticket = None
    if os.path.exists(paths.record(ticket_dir)):
        verify_cs_ticket(run_dir)
        ticket = read_record(ticket_dir)
    return {"method": "cs", "search": search, "ticket": ticket}


def points(summary: Mapping) -> list[dict]:
    """The ticket (none until it is trained): weights remaining (all masked
    weights, and the soft-masked ones), test accuracy of the ticket and of
    each control, and the epochs of the search and the ticket."""
    ticket = summary["ticket"]
    if ticket is None:
        return []
    meta = ticket["ticket"]
    return [
        {
            "phase": "ticket",
            "weights_remaining": 1 - meta["sparsity"],
            "weights_remaining_in_scope": 1 - meta["sparsity_in_scope"],
            "accuracy": metric_of(ticket["ticket_training"], "accuracy"),
            "val_accuracy": ticket["ticket_training"]["final"].get("val_accuracy"),
            "controls": {
                name: metric_of(training, "accuracy")
                for name, training in ticket.get("baselines", {}).items()
            },
            "epochs": ticket["epochs"]["total"],
        }
    ]


registry.register(
    registry.Method(
        name="cs",
        driver=ContinuousSparsification,
        prepare=prepare,
        summarize=summarize,
        points=points,
        table=lambda summary, metric="accuracy": format_cs_table(
            summary["search"], summary["ticket"]
        ),
        plot=lambda summary, path: plot_search(summary["search"], path),
        plot_name=paths.CS_PLOT,
        preflight=preflight.cs,
    )
)
