import copy

import keras
import numpy as np
import pytest

from keras_lottery.config import TrainingConfig
from keras_lottery.recipes import WarmupStepDecay, build_optimizer, training_epochs
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
    adamw = build_optimizer(TrainingConfig(optimizer="adamw", weight_decay=0.01), 5)
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == 0.01
    assert training_epochs(TrainingConfig(duration="12it"), 5) == 3
    assert training_epochs(TrainingConfig(duration="4ep"), 5) == 4


@pytest.mark.parametrize(
    "config,match",
    [
        (TrainingConfig(optimizer="rmsprop"), "optimizer"),
        (TrainingConfig(learning_rate=0.0), "learning_rate"),
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
