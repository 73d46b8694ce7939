"""keras_lottery.recipes: what a config says about training, as objects.

The schedules are tested in tests/test_schedules.py, the callbacks in
tests/test_callbacks.py and the value checks of ``training``/``data`` in
tests/config/test_sections.py."""

import keras
import numpy as np
import pytest

from keras_lottery.config import DataConfig, ModelConfig, RunConfig, TrainingConfig
from keras_lottery.data import Splits
from keras_lottery.optimizers import CoupledAdam, CoupledSGD
from keras_lottery.recipes import Recipe, build_optimizer, training_epochs
from keras_lottery.schedules import WarmupStepDecay

pytestmark = pytest.mark.backend_neutral


def _values(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_build_optimizer_from_config():
    config = TrainingConfig(
        optimizer="sgd",
        learning_rate=0.1,
        momentum=0.9,
        nesterov=True,
        milestones=["2ep"],
        duration="3ep",
    )
    optimizer = build_optimizer(config, steps_per_epoch=5)
    assert isinstance(optimizer, keras.optimizers.SGD) and optimizer.nesterov
    assert _values(optimizer._learning_rate, [9, 10]) == pytest.approx([0.1, 0.01])
    assert isinstance(optimizer, CoupledSGD) and optimizer.coupled_weight_decay == 0
    sgd = build_optimizer(TrainingConfig(optimizer="sgd", weight_decay=1e-4), 5, ["m"])
    assert sgd.coupled_weight_decay == 1e-4 and sgd.exclude == ["m"]
    adam = build_optimizer(TrainingConfig(weight_decay=1e-3), 5)
    assert type(adam) is CoupledAdam and adam.coupled_weight_decay == 1e-3
    adamw = build_optimizer(TrainingConfig(optimizer="adamw", weight_decay=0.01), 5)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01


def test_warmup_and_milestones_become_one_schedule_in_steps():
    config = TrainingConfig(
        learning_rate=0.4, milestones=["2ep", "30it"], gamma=0.5, warmup="1ep"
    )
    lr = build_optimizer(config, steps_per_epoch=10)._learning_rate
    assert isinstance(lr, WarmupStepDecay)
    assert (lr.milestones, lr.warmup_steps, lr.gamma) == ([20, 30], 10, 0.5)
    assert _values(lr, [0, 9, 19, 20, 30]) == pytest.approx([0.04, 0.4, 0.4, 0.2, 0.1])
    plain = build_optimizer(TrainingConfig(learning_rate=0.4), 10)
    assert float(keras.ops.convert_to_numpy(plain.learning_rate)) == pytest.approx(0.4)


def test_training_epochs_round_iterations_up():
    assert training_epochs(TrainingConfig(duration="12it"), 5) == 3
    assert training_epochs(TrainingConfig(duration="10it"), 5) == 2
    assert training_epochs(TrainingConfig(duration="4ep"), 5) == 4
    assert training_epochs(TrainingConfig(duration="1it"), 500) == 1


def _splits(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n + 20, 6, 6, 3)).astype("float32")
    y = rng.integers(0, 3, n + 20).astype("int32")
    return Splits(x[:n], y[:n], x[n : n + 10], y[n : n + 10], x[n + 10 :], y[n + 10 :])


def _recipe(**data):
    config = RunConfig(
        data=DataConfig(**data),
        model=ModelConfig("lenet_300_100", {"hidden": [8]}),
        training=TrainingConfig(batch_size=16, duration="3ep"),
    )
    return Recipe(config, splits=_splits())


def _first_batch(kwargs):
    return next(iter(kwargs["x"]))[0].numpy()


def test_recipe_arrays_by_default_and_counts():
    recipe = _recipe()
    kwargs = recipe.fit_kwargs()
    assert kwargs["x"] is recipe.splits.x_train and kwargs["batch_size"] == 16
    assert recipe.steps_per_epoch == 3 and recipe.epochs == 3
    assert recipe.total_steps == 9
    assert kwargs["validation_data"][0].shape == (10, 6, 6, 3)
    model = recipe.build_model()
    recipe.compile(model)
    assert model.output_shape == (None, 3)
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_order_seed_changes_only_the_data_stream():
    recipe = _recipe(augment="flip", normalize=True)
    first = recipe.fit_kwargs()
    assert first["steps_per_epoch"] == 3 and first["y"] is None
    same = _first_batch(recipe.fit_kwargs())
    np.testing.assert_array_equal(_first_batch(first), same)
    other = _first_batch(recipe.fit_kwargs(order_seed=5))
    assert not np.array_equal(same, other)
    # Normalized with the training statistics, in training and evaluation alike.
    stacked = np.concatenate([b[0].numpy() for b in recipe.train_eval_data()])
    np.testing.assert_allclose(stacked.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(stacked.std(axis=(0, 1, 2)), 1, atol=1e-4)
    # An explicit order seed forces the seeded pipeline even for plain arrays.
    assert "steps_per_epoch" in _recipe().fit_kwargs(order_seed=1)


def test_recipe_accepts_random_resized_crop():
    # Accepted by the config, so the recipe must build its pipeline too.
    recipe = _recipe(augment="random_resized_crop")
    kwargs = recipe.fit_kwargs()
    batch = _first_batch(kwargs)
    assert batch.shape == (16, 6, 6, 3) and kwargs["steps_per_epoch"] == 3
