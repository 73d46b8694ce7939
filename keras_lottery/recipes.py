"""Training recipes from a :class:`TrainingConfig`: optimizer, learning-rate
schedule (linear warm-up, step decay at milestones) and training length.

Example:

>>> config = TrainingConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9,
...                         milestones=["80ep", "120ep"], duration="160ep")
>>> optimizer = build_optimizer(config, steps_per_epoch=391)
"""

from __future__ import annotations

import math

import keras

from keras_lottery.config import TrainingConfig
from keras_lottery.rewind import Step

OPTIMIZERS = ("sgd", "adam", "adamw")


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


def training_epochs(config: TrainingConfig, steps_per_epoch: int) -> int:
    """Whole epochs covering ``config.duration`` (iterations are rounded up)."""
    step = Step.parse(config.duration)
    if step.amount < 1:
        raise ValueError(
            f"training.duration must be positive; got {config.duration!r}."
        )
    return max(1, math.ceil(step.iterations(steps_per_epoch) / steps_per_epoch))


def build_optimizer(config: TrainingConfig, steps_per_epoch: int):
    """The Keras optimizer the config describes."""
    if config.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"training.optimizer must be one of {OPTIMIZERS}; got {config.optimizer!r}."
        )
    if config.learning_rate <= 0:
        raise ValueError(
            f"training.learning_rate must be > 0; got {config.learning_rate}."
        )
    milestones = [Step.parse(m).iterations(steps_per_epoch) for m in config.milestones]
    warmup = Step.parse(config.warmup).iterations(steps_per_epoch)
    lr = config.learning_rate
    if milestones or warmup:
        lr = WarmupStepDecay(config.learning_rate, milestones, config.gamma, warmup)
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay or None,
        )
    if config.optimizer == "adam":
        return keras.optimizers.Adam(lr, weight_decay=config.weight_decay or None)
    return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
