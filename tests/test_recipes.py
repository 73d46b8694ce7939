import copy

import keras
import numpy as np
import pytest

from keras_lottery.config import DataConfig, ModelConfig, RunConfig, TrainingConfig
from keras_lottery.data import Splits
from keras_lottery.optimizers import CoupledSGD
from keras_lottery.recipes import (
    Recipe,
    WarmupStepDecay,
    build_optimizer,
    training_epochs,
)
from keras_lottery.rewind import OffsetSchedule, RewindCheckpoint, StopAtIteration

pytestmark = pytest.mark.backend_neutral


def _values(schedule, steps):
    return [float(keras.ops.convert_to_numpy(schedule(s))) for s in steps]


def test_warmup_step_decay_values():
    schedule = WarmupStepDecay(0.1, milestones=[10, 20], gamma=0.1, warmup_steps=4)
    assert _values(schedule, [0, 1, 3, 9, 10, 19, 20, 25]) == pytest.approx(
        [0.025, 0.05, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )


def test_schedules_serialize():
    inner = WarmupStepDecay(0.1, milestones=[10], gamma=0.5)
    offset = OffsetSchedule(inner, 8)
    restored = keras.optimizers.schedules.deserialize(
        keras.optimizers.schedules.serialize(offset)
    )
    assert _values(restored, [0, 1, 2, 3]) == pytest.approx(
        _values(inner, [8, 9, 10, 11])
    )


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
    adamw = build_optimizer(TrainingConfig(optimizer="adamw", weight_decay=0.01), 5)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01
    assert training_epochs(TrainingConfig(duration="12it"), 5) == 3
    assert training_epochs(TrainingConfig(duration="4ep"), 5) == 4


@pytest.mark.parametrize(
    "config,match",
    [
        (TrainingConfig(optimizer="rmsprop"), "optimizer"),
        (TrainingConfig(learning_rate=0.0), "learning_rate"),
        (TrainingConfig(weight_decay=-1e-4), "weight_decay"),
    ],
)
def test_bad_training_config(config, match):
    with pytest.raises(ValueError, match=match):
        build_optimizer(config, 5)


def test_callbacks_deep_copy_and_work_after_copy():
    x = np.zeros((32, 3), "float32")
    y = np.zeros((32,), "int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    capture = copy.deepcopy(RewindCheckpoint("3it"))
    stop = copy.deepcopy(StopAtIteration(5))
    history = model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[capture, stop]
    )
    assert capture.state is not None and len(history.history["loss"]) == 1
    copy.deepcopy(RewindCheckpoint("2ep"))  # unbound callbacks hold no model


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


def test_recipe_bad_augmentation():
    with pytest.raises(ValueError, match="data.augment must be one of"):
        _recipe(augment="mixup")
