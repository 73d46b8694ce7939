"""Continuous Sparsification (Savarese, Silva & Maire, NeurIPS 2020).

Ticket search with soft masks instead of iterative magnitude pruning:

1. :func:`soften` turns the chosen layers of a model into soft-mask layers
   (``w * sigmoid(beta * s) / sigmoid(s0)``, see :mod:`keras_lottery.layers.soft`);
   the layers add ``lambda * sum(m)`` to the loss.
2. Each of ``rounds`` search rounds trains the soft model for the recipe's
   epochs while :class:`TemperatureSchedule` anneals beta from 1 to
   ``final_temperature`` (multiplied every epoch). The full model state at the
   rewind point (default: epoch 2 of the first round) is captured. Between
   rounds the logits are reset, ``s <- min(beta * s, s0)`` (the paper) or
   ``min(s, s0)`` (the authors' code, which resets beta to 1 first): positive
   logits go back to s0, negative ones stay negative; same signs, same mask.
   The optimizer (momentum included) persists across rounds and the
   learning-rate schedule restarts, as in the authors' code; weights are not
   rewound between rounds.
3. :func:`binarize` takes the hard mask ``1[s > 0]`` (or, with
   ``target_sparsity``, the exact top-k logits over all soft layers).
4. Ticket mode rewinds every weight to the rewind point, :func:`harden` turns
   the soft layers back into ordinary masked layers with the hard mask, and the
   result is trained for one more round with a fresh optimizer. Prune mode
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
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import keras
import numpy as np
from keras import ops

from keras_lottery import pruning
from keras_lottery._io import (
    atomic_write_json,
    finished_phases,
    load_arrays,
    save_arrays,
)
from keras_lottery.branches import control_model
from keras_lottery.conversion import check_graph_model, clone_with_weights, copy_of
from keras_lottery.imp import BASELINES, EVALUATE_AT
from keras_lottery.layers.masked import (
    MaskedConv2D,
    MaskedDense,
    MaskedDepthwiseConv2D,
    is_masked,
)
from keras_lottery.layers.soft import (
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
    check_soft_arguments,
    is_soft_masked,
)
from keras_lottery.rewind import (
    RewindCheckpoint,
    Step,
    capture_state,
    restore_state,
    sync_state,
)
from keras_lottery.ticket import Ticket
from keras_lottery.training import (
    TrainingRecord,
    assign_all,
    fit_and_record,
    infer_steps_per_epoch,
    train_from_step,
)

MODES = ("ticket", "prune")
LOGIT_RESETS = ("paper", "code")
LOGITS = "mask_logits"

#: Layer class -> soft-mask twin (plain Keras layers and masked twins alike).
SOFT_TWINS: dict[type, type] = {
    keras.layers.Dense: SoftMaskedDense,
    keras.layers.Conv2D: SoftMaskedConv2D,
    keras.layers.DepthwiseConv2D: SoftMaskedDepthwiseConv2D,
    MaskedDense: SoftMaskedDense,
    MaskedConv2D: SoftMaskedConv2D,
    MaskedDepthwiseConv2D: SoftMaskedDepthwiseConv2D,
}

#: Soft-mask class -> the masked (hard) twin it binarizes to.
HARD_TWINS: dict[type, type] = {
    SoftMaskedDense: MaskedDense,
    SoftMaskedConv2D: MaskedConv2D,
    SoftMaskedDepthwiseConv2D: MaskedDepthwiseConv2D,
}

_SOFT_KEYS = ("mask_initial_value", "mask_penalty")


# --------------------------------------------------------------------------- layers


def soft_layers(model) -> list:
    """The soft-mask layers of ``model`` (nested models included), in order."""
    return [layer for layer in model._flatten_layers() if is_soft_masked(layer)]


def soften(
    model,
    layers: Iterable[str] | None = None,
    *,
    mask_initial_value: float = 0.0,
    penalty: float = 1e-8,
):
    """A copy of ``model`` with ``layers`` replaced by soft-mask twins.

    Eligible layers are ``Dense``, ``Conv2D`` and ``DepthwiseConv2D`` and their
    masked twins; ``layers=None`` takes them all. Kernels and biases are copied
    (so outputs are identical: the soft mask is 1 at start); every other layer
    keeps its class and weights. The source must be dense in those layers.

    Raises ``ValueError`` naming unknown or ineligible layers, or a layer whose
    mask already prunes weights.
    """
    check_graph_model(model, "soften")
    check_soft_arguments(mask_initial_value, penalty)
    leaves = [layer for layer in model._flatten_layers() if not layer._layers]
    eligible = [layer.name for layer in leaves if type(layer) in SOFT_TWINS]
    names = set(eligible if layers is None else layers)
    if isinstance(layers, str):
        raise ValueError(f"`layers` must be a list of names; use [{layers!r}].")
    bad = sorted(names - set(eligible))
    if bad:
        raise ValueError(
            f"Cannot soft-mask layer(s) {bad}: not found, or not a Dense, Conv2D "
            f"or DepthwiseConv2D (or masked twin). Eligible: {sorted(eligible)}."
        )
    if not names:
        raise ValueError("No layer to soft-mask: `layers` is empty.")
    for layer in leaves:
        if layer.name in names and is_masked(layer) and not layer.get_mask().all():
            raise ValueError(
                f"Layer '{layer.name}' already has pruned weights; Continuous "
                "Sparsification starts from a dense network."
            )
    extra = {"mask_initial_value": mask_initial_value, "mask_penalty": penalty}

    def clone(layer):
        if layer.name in names:
            return SOFT_TWINS[type(layer)].from_config({**layer.get_config(), **extra})
        return type(layer).from_config(layer.get_config())

    return _keep_architecture(model, clone_with_weights(model, clone, _copy_soft))


def harden(model, masks: Mapping[str, np.ndarray] | None = None):
    """A copy of ``model`` with every soft-mask layer replaced by its masked
    twin, holding the binary mask ``masks[name]`` (default: ``s > 0``) and the
    layer's weights ``w`` (pruned entries zeroed). Other layers keep their
    weights. The copy is compiled like ``model`` (fresh optimizer) if it was.
    """
    soft = soft_layers(model)
    if not soft:
        raise ValueError("The model has no soft-mask layer to binarize.")
    masks = dict(masks) if masks is not None else binarize(model)
    names = {layer.name for layer in soft}
    if set(masks) != names:
        raise ValueError(
            f"harden needs one mask per soft-mask layer {sorted(names)}; got masks "
            f"for {sorted(masks)}."
        )

    def clone(layer):
        twin = HARD_TWINS.get(type(layer))
        if twin is None:
            return type(layer).from_config(layer.get_config())
        config = {k: v for k, v in layer.get_config().items() if k not in _SOFT_KEYS}
        return twin.from_config(config)

    hard = _keep_architecture(model, clone_with_weights(model, clone, _copy_soft))
    pruning.set_masks(hard, masks)
    return hard


def _copy_soft(source, target) -> None:
    """Copies a layer's weights across soft/masked/plain twins: the leading
    kernel (and bias) always; everything else only between same-class layers."""
    if type(source) is type(target):
        for src, dst in zip(source.weights, target.weights, strict=True):
            dst.assign(copy_of(src))
        return
    kernel = source.raw_kernel if hasattr(source, "raw_kernel") else source.kernel
    target_kernel = target.raw_kernel if hasattr(target, "raw_kernel") else None
    target_kernel = target_kernel if target_kernel is not None else target.kernel
    target_kernel.assign(copy_of(kernel))
    if getattr(source, "bias", None) is not None:
        target.bias.assign(copy_of(source.bias))


def _keep_architecture(source, copy_model):
    from keras_lottery.models.registry import _ATTRIBUTE

    architecture = getattr(source, _ATTRIBUTE, None)
    if architecture is not None:
        setattr(copy_model, _ATTRIBUTE, architecture)
    return copy_model


# --------------------------------------------------------------------------- masks


def binarize(model, target_sparsity: float | None = None) -> dict[str, np.ndarray]:
    """Hard masks of the soft-mask layers: ``s > 0``, or, with
    ``target_sparsity``, the ``round((1 - target) * n)`` largest logits over all
    soft layers together (ties broken by position, earlier kept), so the
    sparsity is exact."""
    layers = soft_layers(model)
    if not layers:
        raise ValueError("The model has no soft-mask layer to binarize.")
    sync_state(model)
    if target_sparsity is None:
        return {layer.name: layer.hard_mask() for layer in layers}
    _check_target(target_sparsity)
    logits = [np.asarray(ops.convert_to_numpy(lyr.mask_logits)) for lyr in layers]
    flat = np.concatenate([x.ravel() for x in logits])
    keep = int(round((1.0 - target_sparsity) * flat.size))
    alive = np.zeros(flat.size, dtype=bool)
    alive[np.argsort(-flat, kind="stable")[:keep]] = True
    masks, offset = {}, 0
    for layer, x in zip(layers, logits, strict=True):
        masks[layer.name] = alive[offset : offset + x.size].reshape(x.shape)
        offset += x.size
    return masks


def _check_target(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"target_sparsity must be a number; got {value!r}.")
    if not 0 <= value < 1:
        raise ValueError(f"target_sparsity must be in [0, 1); got {value!r}.")


def remaining_fraction(model) -> float:
    """Share of the soft-masked weights with ``s > 0``."""
    masks = binarize(model)
    return sum(int(m.sum()) for m in masks.values()) / sum(
        m.size for m in masks.values()
    )


def reset_logits(model, rule: str = "paper") -> None:
    """Between rounds: ``s <- min(beta * s, s0)`` (``"paper"``) or
    ``min(s, s0)`` (``"code"``, the authors' implementation)."""
    if rule not in LOGIT_RESETS:
        raise ValueError(f"rule must be one of {LOGIT_RESETS}; got {rule!r}.")
    sync_state(model)
    for layer in soft_layers(model):
        logits = ops.convert_to_tensor(layer.mask_logits)
        if rule == "paper":
            logits = ops.multiply(ops.cast(layer.temperature, logits.dtype), logits)
        layer.mask_logits.assign(ops.minimum(logits, layer.mask_initial_value))


def rewind_weights(model, state) -> None:
    """Restores ``state`` (from ``rewind.capture_state``) into every variable
    except the soft-mask layers' logits, temperature and penalty, which keep
    their current values (the authors' ``rewind_weights``)."""
    sync_state(model)
    keep = [
        (variable, copy_of(variable))
        for layer in soft_layers(model)
        for variable in (layer.mask_logits, layer.temperature, layer.penalty)
    ]
    restore_state(model, state)
    for variable, value in keep:
        variable.assign(value)


def set_temperature(model, beta: float) -> None:
    for layer in soft_layers(model):
        layer.set_temperature(beta)


# --------------------------------------------------------------------------- callbacks


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


def check_temperature(value) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"final_temperature must be a number > 0; got {value!r}.")


# --------------------------------------------------------------------------- records


@dataclass
class SearchRoundRecord:
    """One search round: the training and the mask it left (``s > 0``)."""

    round: int
    fraction_remaining: float
    layers_remaining: dict[str, float]
    final_temperature: float
    training: TrainingRecord

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SearchRoundRecord:
        data = dict(data)
        data["training"] = TrainingRecord(**data["training"])
        return cls(**data)


@dataclass
class CSResult:
    """Search rounds, the trained ticket and its controls."""

    rounds: list[SearchRoundRecord]
    ticket_training: TrainingRecord
    ticket: Ticket
    baselines: dict[str, TrainingRecord] = field(default_factory=dict)

    @property
    def epochs(self) -> dict[str, int]:
        """Epochs spent: search, ticket training and total (controls excluded)."""
        search = sum(r.training.epochs for r in self.rounds)
        return {
            "search": search,
            "ticket": self.ticket_training.epochs,
            "total": search + self.ticket_training.epochs,
        }

    def to_dict(self) -> dict:
        return {
            "rounds": [r.to_dict() for r in self.rounds],
            "ticket_training": asdict(self.ticket_training),
            "baselines": {k: asdict(v) for k, v in self.baselines.items()},
            "epochs": self.epochs,
            "ticket": {
                k: v for k, v in self.ticket.metadata.items() if k != "model_config"
            },
        }


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
        baselines: controls trained like the ticket: ``"random_reinit"``
            (same masks, fresh initialization) and ``"random_prune"`` (same
            per-layer counts, random positions, the ticket's weights).
        evaluate_at: ``"final"`` or ``"best"`` (lowest validation loss) weights
            for the recorded test metrics.
        seed: seeds each phase (``seed + round``).
        checkpoint_dir: if set, each finished round is saved there and a new
            ``run`` resumes after the last finished one.
        verbose: 1 prints one summary line per phase.
    """

    def __init__(
        self,
        *,
        rounds: int = 3,
        final_temperature: float = 200.0,
        rewind="2ep",
        mode: str = "ticket",
        target_sparsity: float | None = None,
        logit_reset: str = "paper",
        baselines: Iterable[str] = (),
        evaluate_at: str = "final",
        seed: int = 0,
        checkpoint_dir: str | None = None,
        verbose: int = 1,
    ):
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise ValueError(f"rounds must be an int >= 1; got {rounds!r}.")
        check_temperature(final_temperature)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}; got {mode!r}.")
        if target_sparsity is not None:
            _check_target(target_sparsity)
        if logit_reset not in LOGIT_RESETS:
            raise ValueError(
                f"logit_reset must be one of {LOGIT_RESETS}; got {logit_reset!r}."
            )
        self.baselines = tuple(baselines)
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(
                f"Unknown baseline(s) {unknown}; allowed: {list(BASELINES)}."
            )
        if evaluate_at not in EVALUATE_AT:
            raise ValueError(
                f"evaluate_at must be one of {EVALUATE_AT}; got {evaluate_at!r}."
            )
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
                "keras_lottery.cs.soften(model, layers)."
            )
        if not getattr(model, "compiled", False):
            raise ValueError("Compile the model first (see keras_lottery.cs).")
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
        self.store = _Store(cs.checkpoint_dir) if cs.checkpoint_dir else None

    def run(self) -> CSResult:
        records, rewind_state = [], None
        if self.store is not None:
            records, rewind_state = self.store.resume_search(self.model)
            if records and self.cs.verbose:
                print(
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
                print(search_line(record.to_dict()), flush=True)
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
            callbacks=copy.deepcopy(self.callbacks) + extra,
            test_data=self.test_data,
            keep_best=self.cs.evaluate_at == "best",
            **self.fit_kwargs,
        )
        if guard.bad is not None:
            where = (
                f"the last good checkpoint is search round {r - 1} in {self.store.root}"
                if self.store is not None and r > 0
                else "no round was saved"
            )
            raise RuntimeError(
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
            return self.store.load_result(records)
        masks = binarize(self.model, self.cs.target_sparsity)
        if self.cs.mode == "ticket":
            rewind_weights(self.model, rewind_state)
        hard = harden(self.model, masks)  # compiled with a fresh optimizer
        start = capture_state(hard)
        ticket = self._ticket(hard, start, records)
        keras.utils.set_random_seed(self.cs.seed + self.cs.rounds)
        training = self._train_hard(hard)
        baselines = {}
        for i, name in enumerate(self.cs.baselines):
            seed = self.cs.seed + 1000 * (self.cs.rounds + 1) + i
            control = control_model(
                name, ticket, lambda: keras.models.clone_model(hard), seed
            )
            baselines[name] = self._train_hard(control)
        ticket.metadata["metrics"] = {"test": training.test, "final": training.final}
        result = CSResult(records, training, ticket, baselines)
        if self.store is not None:
            self.store.save_result(hard, result)
        if self.cs.verbose:
            print(ticket_line(result.to_dict()), flush=True)
        return result

    def _train_hard(self, model) -> TrainingRecord:
        """One whole round with a fresh optimizer (the recipe's schedule from 0)."""
        return train_from_step(
            model,
            0,
            compile_config=self.compile_config,
            x=self.x,
            y=self.y,
            epochs=self.epochs,
            callbacks=copy.deepcopy(self.callbacks),
            test_data=self.test_data,
            keep_best=self.cs.evaluate_at == "best",
            **self.fit_kwargs,
        )

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


# --------------------------------------------------------------------------- files


class _Store:
    """``search_NNN/{record.json, state.npz, optimizer.npz}``, ``rewind_state.npz``,
    ``ticket.npz``, ``ticket/{record.json, trained.npz}``; ``record.json`` files
    are written last, so their presence marks a finished phase."""

    def __init__(self, root):
        self.root = os.fspath(root)

    def _round_dir(self, r):
        return os.path.join(self.root, f"search_{r:03d}")

    def finished_rounds(self) -> list[int]:
        return finished_phases(self.root, "search")

    def resume_search(self, model):
        rounds = self.finished_rounds()
        if not rounds:
            return [], None
        records = [
            SearchRoundRecord.from_dict(_read_json(self._round_dir(r), "record.json"))
            for r in rounds
        ]
        last = self._round_dir(rounds[-1])
        assign_all(model, load_arrays(os.path.join(last, "state.npz")))
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        for variable, value in zip(
            optimizer.variables,
            load_arrays(os.path.join(last, "optimizer.npz")),
            strict=True,
        ):
            variable.assign(value)
        rewind_state = load_arrays(os.path.join(self.root, "rewind_state.npz"))
        return records, rewind_state

    def save_round(self, model, record, rewind_state) -> None:
        directory = self._round_dir(record.round)
        os.makedirs(directory, exist_ok=True)
        if record.round == 0:
            save_arrays(os.path.join(self.root, "rewind_state.npz"), rewind_state)
        sync_state(model)
        save_arrays(os.path.join(directory, "state.npz"), capture_state(model))
        save_arrays(
            os.path.join(directory, "optimizer.npz"),
            [copy_of(v) for v in model.optimizer.variables],
        )
        atomic_write_json(os.path.join(directory, "record.json"), record.to_dict())

    def ticket_done(self) -> bool:
        return os.path.exists(os.path.join(self.root, "ticket", "record.json"))

    def save_result(self, hard, result: CSResult) -> None:
        directory = os.path.join(self.root, "ticket")
        os.makedirs(directory, exist_ok=True)
        result.ticket.save(os.path.join(self.root, "ticket.npz"))
        save_arrays(os.path.join(directory, "trained.npz"), capture_state(hard))
        atomic_write_json(os.path.join(directory, "record.json"), result.to_dict())

    def load_result(self, records) -> CSResult:
        data = _read_json(os.path.join(self.root, "ticket"), "record.json")
        return CSResult(
            records,
            TrainingRecord(**data["ticket_training"]),
            Ticket.load(os.path.join(self.root, "ticket.npz")),
            {k: TrainingRecord(**v) for k, v in data["baselines"].items()},
        )


def _read_json(directory, name):
    with open(os.path.join(directory, name)) as handle:
        return json.load(handle)


# --------------------------------------------------------------------------- output


def _accuracy(training: Mapping | None):
    if not training:
        return None
    for source, key in (("test", "accuracy"), ("final", "val_accuracy")):
        value = (training.get(source) or {}).get(key)
        if value is not None:
            return value
    return None


def search_line(record: Mapping) -> str:
    acc = _accuracy(record["training"])
    return (
        f"[keras_lottery] CS search round {record['round']} | "
        f"{100 * record['fraction_remaining']:.2f}% of soft-masked weights have s > 0"
        f" | beta {record['final_temperature']:.1f} | accuracy "
        f"{'-' if acc is None else f'{acc:.4f}'} | {record['training']['epochs']} "
        f"epochs, {record['training']['wall_time']:.1f}s"
    )


def ticket_line(result: Mapping) -> str:
    acc = _accuracy(result["ticket_training"])
    ticket = result["ticket"]
    parts = [
        f"[keras_lottery] CS ticket ({ticket['mode']}) | "
        f"{100 * (1 - ticket['sparsity_in_scope']):.2f}% of soft-masked weights, "
        f"{100 * (1 - ticket['sparsity']):.2f}% of all masked weights remain",
        f"accuracy {'-' if acc is None else f'{acc:.4f}'}",
    ]
    for name, training in result["baselines"].items():
        value = _accuracy(training)
        parts.append(f"{name} {'-' if value is None else f'{value:.4f}'}")
    parts.append(f"{result['epochs']['total']} epochs in all")
    return " | ".join(parts)
