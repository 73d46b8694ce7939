"""Pruning schedules: when to prune during ``fit`` and to what density.

A schedule is a pure function of the optimizer step ``s`` (the number of
optimizer updates taken so far): ``should_prune(s)`` says whether the masks are
recomputed once ``s`` updates have been taken (before update ``s + 1``), and
``sparsity(s)`` / ``density(s)`` say to what share of the dense weights. The
callback :class:`keras_lottery.gradual.GradualPruning` applies one during ``fit``.

- :class:`PruningSchedule`: the base for users' own schedules;
- :class:`ConstantSparsity`: one target, re-applied every ``frequency`` steps;
- :class:`PolynomialDecay`: Zhu & Gupta's (2017) gradual schedule;
- :class:`OneShot`: prune once, at one step;
- :class:`IterativeRounds`: IMP's geometric densities ``(1 - fraction) ** r``,
  one round every ``steps_per_round`` steps (without rewinding).

The constructor arguments, the step window (``begin_step <= s <= end_step``,
every ``frequency`` steps from ``begin_step``; ``end_step=-1`` is open-ended) and
PolynomialDecay's formula (computed in float32) are tfmot's, so a schedule
written for ``tfmot.sparsity.keras`` gives the same trajectory here;
``schedule(s)`` returns tfmot's ``(should_prune, sparsity)`` pair. Unlike tfmot's,
these are Python (not tensor) functions: masks are recomputed on the host by the
callback, not inside the compiled train step.

Example:

>>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=100)
>>> schedule.should_prune(200), round(schedule.sparsity(200), 4)
(True, 0.3904)
>>> keras.saving.deserialize_keras_object(
...     keras.saving.serialize_keras_object(schedule)) == schedule
True
"""

from __future__ import annotations

import keras
import numpy as np

from keras_lottery.errors import ConfigError

PACKAGE = "keras_lottery"


class PruningSchedule:
    """Base of the pruning schedules: ``should_prune(step)`` and ``sparsity(step)``.

    Subclasses implement those two (pure functions of the integer step) and
    ``get_config``; ``from_config`` is ``cls(**config)``. Override
    ``last_prune_step`` when prune steps are sparse and easy to enumerate (the
    default tests the steps one by one). Register subclasses with
    ``keras.saving.register_keras_serializable`` to save them.

    Example:

    >>> @keras.saving.register_keras_serializable(package="mine")
    ... class EveryTenSteps(PruningSchedule):
    ...     def should_prune(self, step):
    ...         return step > 0 and step % 10 == 0
    ...     def sparsity(self, step):
    ...         return min(0.9, step / 1000)
    ...     def get_config(self):
    ...         return {}
    """

    def should_prune(self, step: int) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must define should_prune.")

    def sparsity(self, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define sparsity.")

    def density(self, step: int) -> float:
        """Share of the dense weights kept at ``step``: ``1 - sparsity(step)``."""
        return 1.0 - float(self.sparsity(step))

    def last_prune_step(self, after: int, upto: int) -> int | None:
        """The latest prune step ``s`` with ``after < s <= upto`` (None if none)."""
        for step in range(int(upto), int(after), -1):
            if self.should_prune(step):
                return step
        return None

    def __call__(self, step):
        """tfmot's interface: ``(should_prune, sparsity)`` at ``step``."""
        step = int(step)
        return self.should_prune(step), float(self.sparsity(step))

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must define get_config.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, repr(sorted(self.get_config().items()))))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class _WindowedSchedule(PruningSchedule):
    """Prunes every ``frequency`` steps in ``[begin_step, end_step]`` (tfmot's
    ``_should_prune_in_step``); ``end_step=-1`` means no end."""

    def _set_window(self, begin_step, end_step, frequency, open_ended: bool):
        self.begin_step = _int(begin_step, "begin_step", minimum=0)
        self.end_step = _int(end_step, "end_step", minimum=-1)
        self.frequency = _int(frequency, "frequency", minimum=1)
        if self.end_step == -1 and not open_ended:
            raise ConfigError(
                f"{type(self).__name__} needs an end_step (>= begin_step); got -1."
            )
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise ConfigError(
                f"end_step ({self.end_step}) must be >= begin_step "
                f"({self.begin_step}), or -1 for no end."
            )

    def should_prune(self, step: int) -> bool:
        step = int(step)
        in_window = step >= self.begin_step and (
            self.end_step == -1 or step <= self.end_step
        )
        return in_window and (step - self.begin_step) % self.frequency == 0

    def last_prune_step(self, after: int, upto: int) -> int | None:
        upto = int(upto) if self.end_step == -1 else min(int(upto), self.end_step)
        if upto < self.begin_step:
            return None
        step = upto - (upto - self.begin_step) % self.frequency
        return step if step > after else None


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConstantSparsity(_WindowedSchedule):
    """``target_sparsity`` at every prune step: every ``frequency`` steps from
    ``begin_step`` to ``end_step`` (-1: to the end of training).

    >>> ConstantSparsity(0.5, begin_step=100, frequency=50)(150)
    (True, 0.5)
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        self.target_sparsity = _sparsity(target_sparsity, "target_sparsity")
        self._set_window(begin_step, end_step, frequency, open_ended=True)

    def sparsity(self, step: int) -> float:
        return self.target_sparsity

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PolynomialDecay(_WindowedSchedule):
    """Zhu & Gupta's gradual schedule, as tfmot computes it (float32)::

        p = clip((step - begin_step) / (end_step - begin_step), 0, 1)
        sparsity = final + (initial - final) * (1 - p) ** power

    Pruning happens every ``frequency`` steps from ``begin_step`` to ``end_step``
    inclusive, so ``final_sparsity`` is reached at ``end_step`` only if
    ``end_step - begin_step`` is a multiple of ``frequency`` (as in tfmot).

    >>> s = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=1000, frequency=100)
    >>> [round(s.sparsity(t), 4) for t in (0, 500, 1000, 2000)]
    [0.0, 0.7, 0.8, 0.8]
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        self.initial_sparsity = _sparsity(initial_sparsity, "initial_sparsity")
        self.final_sparsity = _sparsity(final_sparsity, "final_sparsity")
        if isinstance(power, bool) or not isinstance(power, (int, float)):
            raise ConfigError(f"power must be a number; got {power!r}.")
        self.power = power
        self._set_window(begin_step, end_step, frequency, open_ended=False)

    def sparsity(self, step: int) -> float:
        f32 = np.float32
        span = self.end_step - self.begin_step
        # tfmot: min(1, max(0, float32(step - begin) / (end - begin))); a zero
        # span (begin == end) is already past the end at the only prune step.
        p = (
            f32(1.0)
            if span == 0
            else np.minimum(
                f32(1.0), np.maximum(f32(0.0), f32(step - self.begin_step) / f32(span))
            )
        )
        decay = np.power(f32(1.0) - p, f32(self.power))
        value = f32(self.initial_sparsity - self.final_sparsity) * decay + f32(
            self.final_sparsity
        )
        return float(value)

    def get_config(self):
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "power": self.power,
            "frequency": self.frequency,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class OneShot(PruningSchedule):
    """Prunes once, to ``target_sparsity``, after ``at_step`` optimizer steps
    (``at_step=0``: before the first update).

    >>> OneShot(0.9, at_step=500).should_prune(500), OneShot(0.9, 500)(501)
    (True, (False, 0.9))
    """

    def __init__(self, target_sparsity, at_step=0):
        self.target_sparsity = _sparsity(target_sparsity, "target_sparsity")
        self.at_step = _int(at_step, "at_step", minimum=0)

    def should_prune(self, step: int) -> bool:
        return int(step) == self.at_step

    def sparsity(self, step: int) -> float:
        return self.target_sparsity

    def last_prune_step(self, after: int, upto: int) -> int | None:
        return self.at_step if after < self.at_step <= upto else None

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, "at_step": self.at_step}


@keras.saving.register_keras_serializable(package=PACKAGE)
class IterativeRounds(PruningSchedule):
    """IMP's densities inside one ``fit``: round ``r`` (1..``rounds``) prunes at
    step ``begin_step + (r - 1) * steps_per_round`` to density
    ``(1 - fraction) ** r`` of the dense weights; weights are not rewound.

    >>> s = IterativeRounds(0.2, rounds=3, steps_per_round=100, begin_step=100)
    >>> [(t, round(s.density(t), 3)) for t in (100, 200, 300) if s.should_prune(t)]
    [(100, 0.8), (200, 0.64), (300, 0.512)]
    """

    def __init__(self, fraction, rounds, steps_per_round, begin_step=0):
        self.fraction = _sparsity(fraction, "fraction")
        self.rounds = _int(rounds, "rounds", minimum=1)
        self.steps_per_round = _int(steps_per_round, "steps_per_round", minimum=1)
        self.begin_step = _int(begin_step, "begin_step", minimum=0)

    def round_at(self, step: int) -> int:
        """Rounds done once ``step`` updates have been taken (0 before the first)."""
        if step < self.begin_step:
            return 0
        return min(
            self.rounds, (int(step) - self.begin_step) // self.steps_per_round + 1
        )

    def should_prune(self, step: int) -> bool:
        offset = int(step) - self.begin_step
        return (
            offset >= 0
            and offset % self.steps_per_round == 0
            and offset // self.steps_per_round < self.rounds
        )

    def sparsity(self, step: int) -> float:
        return 1.0 - (1.0 - self.fraction) ** self.round_at(step)

    def density(self, step: int) -> float:
        # Exactly (1 - f) ** r, as IMP's prune_to_density targets.
        return (1.0 - self.fraction) ** self.round_at(step)

    def last_prune_step(self, after: int, upto: int) -> int | None:
        rounds = self.round_at(upto)
        if rounds == 0:
            return None
        step = self.begin_step + (rounds - 1) * self.steps_per_round
        return step if step > after else None

    def get_config(self):
        return {
            "fraction": self.fraction,
            "rounds": self.rounds,
            "steps_per_round": self.steps_per_round,
            "begin_step": self.begin_step,
        }


def get(identifier) -> PruningSchedule:
    """A schedule from a schedule, or its ``keras.saving`` serialized dict.

    >>> get({"class_name": "OneShot", "config": {"target_sparsity": 0.5}})
    """
    if isinstance(identifier, PruningSchedule):
        return identifier
    if isinstance(identifier, dict):
        schedule = keras.saving.deserialize_keras_object(
            identifier, module_objects=_BUILTIN
        )
        if isinstance(schedule, PruningSchedule):
            return schedule
    raise ConfigError(
        f"Expected a PruningSchedule (ConstantSparsity, PolynomialDecay, OneShot, "
        f"IterativeRounds or a subclass) or its serialized dict; got {identifier!r}."
    )


_BUILTIN = {
    cls.__name__: cls
    for cls in (ConstantSparsity, PolynomialDecay, OneShot, IterativeRounds)
}


def _int(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ConfigError(f"{what} must be >= {minimum}; got {value}.")
    return int(value)


def _sparsity(value, what: str) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.floating))
    if not ok or not 0.0 <= value < 1.0:
        raise ConfigError(f"{what} must be a number in [0, 1); got {value!r}.")
    return float(value)
