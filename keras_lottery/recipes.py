"""Training recipes: what a config says about training, as objects (data,
model, optimizer with its learning-rate schedule, loss, length, evaluation).

Example:

>>> config = TrainingConfig(optimizer="sgd", learning_rate=0.1, momentum=0.9,
...                         milestones=["80ep", "120ep"], duration="160ep")
>>> optimizer = build_optimizer(config, steps_per_epoch=391)
"""

from __future__ import annotations

import math

import keras

from keras_lottery.config import TrainingConfig
from keras_lottery.optimizers import CoupledAdam, CoupledSGD
from keras_lottery.schedules import WarmupStepDecay
from keras_lottery.steps import Step


def training_epochs(config: TrainingConfig, steps_per_epoch: int) -> int:
    """Whole epochs covering ``config.duration`` (iterations are rounded up)."""
    step = Step.parse(config.duration)  # >= 1 (checked by TrainingConfig)
    return max(1, math.ceil(step.iterations(steps_per_epoch) / steps_per_epoch))


def build_optimizer(config: TrainingConfig, steps_per_epoch: int, exclude=()):
    """The Keras optimizer the config describes.

    ``training.weight_decay`` has PyTorch's meaning, as in the papers' recipes:
    coupled L2 (added to the gradient before momentum) for ``sgd`` and ``adam``
    (see :mod:`keras_lottery.optimizers`), decoupled for ``adamw``. Variables
    whose name contains one of ``exclude`` get no weight decay.
    """
    milestones = [Step.parse(m).iterations(steps_per_epoch) for m in config.milestones]
    warmup = Step.parse(config.warmup).iterations(steps_per_epoch)
    lr = config.learning_rate
    if milestones or warmup:
        lr = WarmupStepDecay(config.learning_rate, milestones, config.gamma, warmup)
    if config.optimizer == "sgd":
        return CoupledSGD(
            lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            coupled_weight_decay=config.weight_decay,
            exclude=exclude,
        )
    if config.optimizer == "adam":
        return CoupledAdam(
            lr, coupled_weight_decay=config.weight_decay, exclude=exclude
        )
    optimizer = keras.optimizers.AdamW(lr, weight_decay=config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(exclude) or None)
    return optimizer


# --------------------------------------------------------------------------- recipe


class Recipe:
    """Everything a :class:`RunConfig` says about training, as objects.

    One recipe serves every method (IMP and its controls, Continuous
    Sparsification, instability analysis), so their numbers compare: the same
    data splits, model builder, optimizer, loss, training length and evaluation.

    Data order: with ``data.augment: none``, ``data.normalize: false`` and no
    ``data.order_seed`` the arrays go to ``fit`` as they are and Keras shuffles
    them with the global seed. Otherwise training batches come from
    :func:`keras_lottery.data.pipelines.train_dataset`, a pure function of the order
    seed (default: the run's seed), so two runs can share a starting state and
    differ only in data order and augmentation.

    Example:

    >>> recipe = Recipe(load_config("configs/lenet_mnist.yaml"))
    >>> model = recipe.build_model()
    >>> recipe.compile(model)
    >>> model.fit(**recipe.fit_kwargs(order_seed=3))
    >>> recipe.evaluate(model)
    """

    def __init__(self, config, splits=None):
        from keras_lottery.data import load_dataset

        self.config = config
        self.splits = splits if splits is not None else load_dataset(config.data)
        data = config.data
        self.batch_size = config.training.batch_size
        self.steps_per_epoch = -(-len(self.splits.x_train) // self.batch_size)
        self.epochs = training_epochs(config.training, self.steps_per_epoch)
        self.uses_pipeline = (
            data.augment != "none" or data.normalize or data.order_seed is not None
        )
        self.mean = self.std = None
        if data.normalize:
            from keras_lottery.data.datasets import channel_stats

            self.mean, self.std = channel_stats(self.splits.x_train)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def build_model(self):
        """A freshly initialized registry model (seed with
        ``keras.utils.set_random_seed`` first for a reproducible draw)."""
        from keras_lottery import models
        from keras_lottery.errors import ConfigError

        name, options = self.config.model.name, self.config.model.options
        try:
            return models.get(
                name,
                num_classes=self.splits.num_classes,
                input_shape=self.splits.input_shape,
                **options,
            )
        except TypeError as error:  # an option the builder does not take
            raise ConfigError(
                f"'model.options' {options} do not fit model {name!r}: {error}."
            ) from error

    def optimizer(self, exclude=()):
        return build_optimizer(self.config.training, self.steps_per_epoch, exclude)

    def compile(self, model, exclude=()) -> None:
        """Compiles ``model`` with the recipe's optimizer, loss and accuracy."""
        model.compile(
            self.optimizer(exclude),
            "sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )

    def retrain_plan(self):
        """The config's ``retrain`` tweaks as a
        :class:`~keras_lottery.tweaks.retraining.RetrainPlan`: what every
        ticket-retraining phase (not a dense round) trains with."""
        from keras_lottery.tweaks.retraining import RetrainPlan

        return RetrainPlan.from_config(self.config)

    def default_order_seed(self) -> int:
        seed = self.config.data.order_seed
        return self.config.seed if seed is None else seed

    def fit_kwargs(self, order_seed: int | None = None, verbose: int = 0) -> dict:
        """Keyword arguments for ``model.fit``: training data for the whole run,
        ``epochs``, ``steps_per_epoch`` or ``batch_size``, validation data.

        ``order_seed`` (default: the config's) selects the data order and
        augmentation; passing one always uses the seeded pipeline.
        """
        validation = self._eval_data(self.splits.x_val, self.splits.y_val)
        kwargs = {"epochs": self.epochs, "verbose": verbose}
        if len(self.splits.x_val):
            kwargs["validation_data"] = validation
        if not self.uses_pipeline and order_seed is None:
            return {
                "x": self.splits.x_train,
                "y": self.splits.y_train,
                "batch_size": self.batch_size,
                **kwargs,
            }
        from keras_lottery.data.pipelines import train_dataset

        data = self.config.data
        dataset = train_dataset(
            self.splits.x_train,
            self.splits.y_train,
            batch_size=self.batch_size,
            data_seed=self.default_order_seed() if order_seed is None else order_seed,
            augment=data.augment,
            normalize=data.normalize,
            mean=self.mean,
            std=self.std,
            epochs=self.epochs,
        )
        return {
            "x": dataset,
            "y": None,
            "steps_per_epoch": self.steps_per_epoch,
            "shuffle": False,  # the pipeline shuffles, seeded
            **kwargs,
        }

    @property
    def test_data(self):
        """The test split as ``fit``/``evaluate`` take it."""
        return self._eval_data(self.splits.x_test, self.splits.y_test)

    def train_eval_data(self, limit: int | None = None, batch_size: int = 256):
        """The (un-augmented) training split for evaluation, optionally its first
        ``limit`` examples. ``batch_size`` batches the normalized pipeline
        (arrays are returned as they are)."""
        x, y = self.splits.x_train, self.splits.y_train
        if limit is not None:
            x, y = x[:limit], y[:limit]
        return self._eval_data(x, y, batch_size)

    def _eval_data(self, x, y, batch_size: int = 256):
        if not self.config.data.normalize:
            return (x, y)
        from keras_lottery.data.pipelines import eval_dataset

        return eval_dataset(
            x, y, batch_size=batch_size, mean=self.mean, std=self.std, prefetch=False
        )
