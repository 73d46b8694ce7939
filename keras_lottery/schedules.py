"""Learning-rate schedules (serializable Keras ``LearningRateSchedule``s).

- :class:`WarmupStepDecay`: linear warm-up, then step decay at milestones
  (open_lth's schedule; what ``training.milestones``/``warmup`` build);
- :class:`OffsetSchedule`: any schedule shifted by ``offset`` steps, so a fresh
  optimizer continues it from a rewind point.

Example:

>>> schedule = WarmupStepDecay(0.1, milestones=[32000, 48000], warmup_steps=500)
>>> OffsetSchedule(schedule, 500)(0) == schedule(500)
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_lottery")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``base * gamma ** (milestones passed)``, ramped linearly from 0 over
    ``warmup_steps`` (open_lth's schedule)."""

    def __init__(
        self, base: float, milestones=(), gamma: float = 0.1, warmup_steps: int = 0
    ):
        self.base = float(base)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        passed = sum(keras.ops.cast(step >= m, "float32") for m in self.milestones)
        lr = (
            self.base * keras.ops.power(self.gamma, passed)
            if self.milestones
            else (keras.ops.convert_to_tensor(self.base, "float32"))
        )
        if self.warmup_steps:
            lr = lr * keras.ops.minimum(1.0, (step + 1.0) / self.warmup_steps)
        return lr

    def get_config(self):
        return {
            "base": self.base,
            "milestones": self.milestones,
            "gamma": self.gamma,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="keras_lottery")
class OffsetSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``schedule(step + offset)``: lets a fresh optimizer continue a learning-rate
    schedule from the rewind point instead of from step 0."""

    def __init__(self, schedule, offset: int):
        self.schedule = (
            keras.optimizers.schedules.deserialize(schedule)
            if isinstance(schedule, dict)
            else schedule
        )
        self.offset = int(offset)

    def __call__(self, step):
        return self.schedule(keras.ops.add(step, self.offset))

    def get_config(self):
        return {
            "schedule": keras.optimizers.schedules.serialize(self.schedule),
            "offset": self.offset,
        }
