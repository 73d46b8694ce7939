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
- Optionally each round also trains the two standard controls with the same
  recipe: random reinitialization (same masks, fresh initialization) and random
  pruning (same per-layer counts, random positions, rewound weights).

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
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

import keras

from keras_lottery import pruning
from keras_lottery._io import (
    atomic_write_json,
    finished_phases,
    load_arrays,
    save_arrays,
)
from keras_lottery.rewind import (
    RewindCheckpoint,
    Step,
    capture_state,
    restore_state,
)
from keras_lottery.ticket import Ticket
from keras_lottery.training import (
    TrainingRecord,
    assign_all,
    infer_steps_per_epoch,
    train_from_step,
)

BASELINES = ("random_reinit", "random_prune")
EXTRA_REWINDS = "extra_rewinds"
EVALUATE_AT = ("final", "best")


@dataclass
class RoundRecord:
    """One IMP round: sparsity after pruning and the training that followed."""

    round: int
    fraction_remaining: float
    layers_remaining: dict[str, float]
    ticket: TrainingRecord
    baselines: dict[str, TrainingRecord] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> RoundRecord:
        data = dict(data)
        data["ticket"] = TrainingRecord(**data["ticket"])
        data["baselines"] = {
            k: TrainingRecord(**v) for k, v in data["baselines"].items()
        }
        return cls(**data)


@dataclass
class IMPResult:
    """Per-round records and the final ticket of an IMP run."""

    rounds: list[RoundRecord]
    ticket: Ticket

    def table(self, metric: str = "accuracy") -> str:
        """Round | weights remaining | ticket / controls ``metric`` on test data
        (validation, then training metrics when there is no test data)."""
        return format_round_table([r.to_dict() for r in self.rounds], metric)

    def to_dict(self) -> dict:
        return {
            "rounds": [r.to_dict() for r in self.rounds],
            "ticket": {
                k: v for k, v in self.ticket.metadata.items() if k != "model_config"
            },
        }


class IterativeMagnitudePruning:
    """Runs IMP with rewinding on a compiled Keras model through ``model.fit``.

    Args:
        fraction: share of the remaining weights pruned per round, in (0, 1).
        rounds: number of pruning rounds (round 0, the dense run, not counted).
        target_sparsity: alternative to ``rounds``: the fewest rounds that reach
            at least this sparsity at rate ``fraction``.
        scope: ``"global"`` (one threshold across layers, open_lth) or
            ``"layerwise"`` (Frankle & Carbin's LeNet/Conv-N).
        layers: names of the masked layers to prune (default: all).
        exclude: names never pruned.
        layer_fractions: per-layer rates overriding ``fraction``.
        rewind: rewind point: ``0`` (reset to init), ``"500it"``, ``"2ep"``.
        baselines: controls trained every round: ``"random_reinit"``,
            ``"random_prune"``.
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
        fraction: float = 0.2,
        rounds: int | None = None,
        target_sparsity: float | None = None,
        scope: str = "global",
        layers: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        layer_fractions: Mapping[str, float] | None = None,
        rewind="0it",
        baselines: Iterable[str] = (),
        evaluate_at: str = "final",
        seed: int = 0,
        checkpoint_dir: str | None = None,
        extra_rewinds: Iterable = (),
        verbose: int = 1,
    ):
        _check_fraction(fraction, "fraction")
        for name, value in (layer_fractions or {}).items():
            _check_fraction(value, f"layer_fractions[{name!r}]")
        if scope not in pruning.SCOPES:
            raise ValueError(f"scope must be one of {pruning.SCOPES}; got {scope!r}.")
        self.rounds = rounds_for(fraction, rounds, target_sparsity)
        self.fraction = fraction
        self.scope = scope
        self.layers = None if layers is None else list(layers)
        self.exclude = list(exclude)
        self.layer_fractions = dict(layer_fractions or {})
        self.rewind = Step.parse(rewind)
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
        self.evaluate_at = evaluate_at
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
        total = epochs * steps_per_epoch
        k = self.rewind.iterations(steps_per_epoch)
        for step in [self.rewind, *self.extra_rewinds]:
            at = step.iterations(steps_per_epoch)
            if at >= total:
                raise ValueError(
                    f"Rewind point {step} (= {at} iterations) is not before the end "
                    f"of training ({epochs} epochs x {steps_per_epoch} steps = "
                    f"{total} iterations). Choose an earlier rewind point or train "
                    "longer."
                )
        job = _Job(
            self,
            model,
            x,
            y,
            test_data,
            model_fn,
            fit_kwargs,
            epochs,
            steps_per_epoch,
            k,
        )
        return job.run()

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
    """Validates ``rounds`` / ``target_sparsity`` and returns the number of rounds."""
    if (rounds is None) == (target_sparsity is None):
        raise ValueError("Give exactly one of `rounds` and `target_sparsity`.")
    if rounds is not None:
        if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
            raise ValueError(f"rounds must be a non-negative int; got {rounds!r}.")
        return rounds
    if not isinstance(target_sparsity, (int, float)) or not 0 < target_sparsity < 1:
        raise ValueError(f"target_sparsity must be in (0, 1); got {target_sparsity!r}.")
    return math.ceil(math.log(1 - target_sparsity) / math.log(1 - fraction) - 1e-9)


def _check_fraction(value, what: str) -> None:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not 0 < value < 1
    ):
        raise ValueError(f"{what} must be a number in (0, 1); got {value!r}.")


class _Job:
    """The state of one ``IterativeMagnitudePruning.run`` call."""

    def __init__(
        self,
        imp,
        model,
        x,
        y,
        test_data,
        model_fn,
        fit_kwargs,
        epochs,
        steps_per_epoch,
        k,
    ):
        self.imp, self.model, self.x, self.y = imp, model, x, y
        self.test_data, self.model_fn = test_data, model_fn
        self.callbacks = copy.deepcopy(list(fit_kwargs.pop("callbacks", None) or []))
        self.fit_kwargs = fit_kwargs
        self.epochs, self.steps_per_epoch, self.k = epochs, steps_per_epoch, k
        self.total = epochs * steps_per_epoch
        self.compile_config = model.get_compile_config()
        self.store = _Checkpoints(imp.checkpoint_dir) if imp.checkpoint_dir else None
        self.extra_states = {}

    def run(self) -> IMPResult:
        records, rewind_state, start = [], None, 0
        if self.store is not None:
            records, rewind_state = self.store.resume(self.model)
            start = len(records)
            if start and self.imp.verbose:
                print(
                    f"[keras_lottery] resuming after round {start - 1} "
                    f"from {self.store.root}"
                )
        for r in range(start, self.imp.rounds + 1):
            keras.utils.set_random_seed(self.imp.seed + r)
            if r == 0:
                record, rewind_state = self._dense_round()
            else:
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
                    self._ticket(r, record, rewind_state),
                )
            if self.imp.verbose:
                print(summary_line(record.to_dict()), flush=True)
        final = records[-1]
        return IMPResult(records, self._ticket(final.round, final, rewind_state))

    # ------------------------------------------------------------------ rounds

    def _dense_round(self):
        capture = RewindCheckpoint(self.imp.rewind)
        extra = [RewindCheckpoint(step) for step in self.imp.extra_rewinds]
        record = self._train(self.model, 0, extra_callbacks=[capture, *extra])
        self.extra_states = {c.step: c.state for c in extra}
        return self._round_record(0, record, {}), capture.state

    def _pruned_round(self, r, rewind_state):
        density, layer_densities = self.imp.densities(r)
        pruning.prune_to_density(
            self.model,
            density,
            scope=self.imp.scope,
            layers=self.imp.layers,
            exclude=self.imp.exclude,
            layer_densities=layer_densities,
        )
        masks = pruning.get_masks(self.model)
        restore_state(self.model, rewind_state)
        record = self._train(self.model, self.k)
        baselines = {}
        for name in self.imp.baselines:
            keras.utils.set_random_seed(self.imp.seed + 1000 * (r + 1) + len(baselines))
            baselines[name] = self._train(
                self._control(name, masks, rewind_state, r), self.k
            )
        return self._round_record(r, record, baselines)

    def _control(self, name, masks, rewind_state, r):
        control = self._fresh_model()
        if name == "random_prune":
            restore_state(control, rewind_state)
            masks = pruning.random_masks_like(masks, seed=self.imp.seed + 7919 * r)
        pruning.set_masks(control, masks)
        return control

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
            layers_remaining={
                lyr.name: lyr.fraction_remaining for lyr in report.layers
            },
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
            metrics={"test": record.ticket.test, "final": record.ticket.final},
        )

    # ------------------------------------------------------------------ training

    def _train(self, model, start, extra_callbacks=()) -> TrainingRecord:
        """Trains steps start..T with a fresh optimizer and records the outcome."""
        return train_from_step(
            model,
            start,
            compile_config=self.compile_config,
            x=self.x,
            y=self.y,
            epochs=self.epochs,
            callbacks=copy.deepcopy(self.callbacks) + list(extra_callbacks),
            test_data=self.test_data,
            keep_best=self.imp.evaluate_at == "best",
            **self.fit_kwargs,
        )


# ------------------------------------------------------------------ checkpoints


class _Checkpoints:
    """``round_NNN/{record.json, trained.npz, ticket.npz}`` + ``rewind_state.npz``.

    A round counts as finished once its ``record.json`` exists (written last).
    """

    def __init__(self, root):
        self.root = os.fspath(root)

    def _round_dir(self, r):
        return os.path.join(self.root, f"round_{r:03d}")

    def finished_rounds(self) -> list[int]:
        return finished_phases(self.root, "round")

    def resume(self, model):
        rounds = self.finished_rounds()
        if not rounds:
            return [], None
        records = []
        for r in rounds:
            with open(os.path.join(self._round_dir(r), "record.json")) as handle:
                records.append(RoundRecord.from_dict(json.load(handle)))
        assign_all(
            model,
            load_arrays(os.path.join(self._round_dir(rounds[-1]), "trained.npz")),
        )
        rewind_state = load_arrays(os.path.join(self.root, "rewind_state.npz"))
        return records, rewind_state

    def save_extra_rewind(self, step, state, ticket) -> None:
        """``extra_rewinds/<step>/{rewind_state.npz, ticket.npz}``: what a run
        rewinding to ``step`` would save at round 0 (see ``IterativeMagnitude
        Pruning(extra_rewinds=...)``)."""
        directory = os.path.join(self.root, EXTRA_REWINDS, str(step))
        save_arrays(os.path.join(directory, "rewind_state.npz"), state)
        ticket.save(os.path.join(directory, "ticket.npz"))

    def save_round(self, model, record, rewind_state, ticket) -> None:
        directory = self._round_dir(record.round)
        os.makedirs(directory, exist_ok=True)
        if record.round == 0:
            save_arrays(os.path.join(self.root, "rewind_state.npz"), rewind_state)
        save_arrays(os.path.join(directory, "trained.npz"), capture_state(model))
        ticket.save(os.path.join(directory, "ticket.npz"))
        atomic_write_json(os.path.join(directory, "record.json"), record.to_dict())


# ------------------------------------------------------------------ reporting


def _metric(training: Mapping | None, metric: str):
    if not training:
        return None
    for source in ("test", "final"):
        values = training.get(source) or {}
        for key in (metric, f"val_{metric}") if source == "final" else (metric,):
            if key in values:
                return values[key]
    return None


def format_round_table(rounds: list[Mapping], metric: str = "accuracy") -> str:
    """A text table of round records (dicts as saved in ``record.json``)."""
    controls = sorted({name for r in rounds for name in r.get("baselines", {})})
    header = ["round", "remaining", f"ticket {metric}"] + [
        f"{c} {metric}" for c in controls
    ]
    header += ["epochs", "seconds"]
    stability = any("instability" in r for r in rounds)
    if stability:
        header += ["instability (test)"]
    rows = []
    for r in rounds:
        row = [
            str(r["round"]),
            f"{100 * r['fraction_remaining']:.2f}%",
            _fmt(_metric(r["ticket"], metric)),
        ]
        row += [_fmt(_metric(r.get("baselines", {}).get(c), metric)) for c in controls]
        row += [str(r["ticket"]["epochs"]), f"{r['ticket']['wall_time']:.1f}"]
        if stability:
            row.append(_fmt_instability(r.get("instability")))
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    return "\n".join(lines)


def _fmt_instability(summary) -> str:
    test = (summary or {}).get("test")
    if not test:
        return "-"
    return f"{100 * test['mean']:.2f} ± {100 * test['std']:.2f} pp"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_line(record: Mapping, metric: str = "accuracy") -> str:
    """One line per round for progress output."""
    parts = [
        f"[keras_lottery] round {record['round']}",
        f"{100 * record['fraction_remaining']:.2f}% weights remaining",
        f"ticket {metric} {_fmt(_metric(record['ticket'], metric))}",
    ]
    for name, training in record.get("baselines", {}).items():
        parts.append(f"{name} {_fmt(_metric(training, metric))}")
    parts.append(
        f"{record['ticket']['epochs']} epochs, {record['ticket']['wall_time']:.1f}s"
    )
    return " | ".join(parts)
