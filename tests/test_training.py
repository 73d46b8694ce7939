"""keras_lottery.training: training from step k, and reading its records."""

import keras
import numpy as np
import pytest

from keras_lottery.schedules import OffsetSchedule
from keras_lottery.training import (
    TrainingRecord,
    infer_steps_per_epoch,
    metric_of,
    offset_compile_config,
    train_from_step,
)
from tests.helpers import classification_data, mlp

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def test_steps_per_epoch_inference():
    x = np.zeros((100, 3))
    assert infer_steps_per_epoch(x, {"batch_size": 30}) == 4
    assert infer_steps_per_epoch(x, {"batch_size": 30, "validation_split": 0.2}) == 3
    assert infer_steps_per_epoch(x, {}) == 4  # Keras's default batch size 32
    assert infer_steps_per_epoch(x, {"steps_per_epoch": 7}) == 7
    assert infer_steps_per_epoch({"a": x, "b": x}, {"batch_size": 50}) == 2
    assert infer_steps_per_epoch([x[:64], x[:64]], {"batch_size": 16}) == 4


def test_metric_of_prefers_test_then_training_then_validation():
    record = {
        "test": {"accuracy": 0.9},
        "final": {"accuracy": 0.8, "val_accuracy": 0.7, "val_loss": 0.5},
    }
    assert metric_of(record) == 0.9
    assert metric_of({**record, "test": None}) == 0.8
    assert metric_of({"test": None, "final": {"val_accuracy": 0.7}}) == 0.7
    assert metric_of(record, "loss") == 0.5  # only val_loss recorded
    assert metric_of(record, "auc") is None
    assert metric_of(None) is None and metric_of({}) is None


def test_offset_compile_config_shifts_only_a_schedule():
    model = mlp()
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([8], [0.5, 0.1])
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    config = model.get_compile_config()
    shifted = offset_compile_config(config, 8)
    lr = keras.saving.deserialize_keras_object(
        shifted["optimizer"]["config"]["learning_rate"]
    )
    assert isinstance(lr, OffsetSchedule) and lr.offset == 8
    # PiecewiseConstantDecay: 0.5 up to step 8 included, then 0.1.
    assert [float(keras.ops.convert_to_numpy(lr(s))) for s in (0, 1)] == (
        pytest.approx([0.5, 0.1])
    )
    assert config == model.get_compile_config()  # the input is not changed
    assert offset_compile_config(config, 0) == config
    model.compile(keras.optimizers.SGD(0.3), "sparse_categorical_crossentropy")
    plain = model.get_compile_config()
    assert offset_compile_config(plain, 8) == plain


def test_train_from_a_step_inside_an_epoch_stops_at_the_end():
    x, y = classification_data(n=64)  # 4 steps per epoch at batch 16
    model = mlp()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    config = model.get_compile_config()
    record = train_from_step(
        model,
        6,
        compile_config=config,
        x=x,
        y=y,
        epochs=3,
        batch_size=16,
        verbose=0,
        validation_data=(x[:16], y[:16]),
        test_data=(x, y),
    )
    # Steps 6..11: epochs 2 and 3 (initial_epoch 1), 6 optimizer steps.
    assert record.steps == 6 and record.epochs == 2
    assert record.best_epoch in (1, 2) and set(record.test) == {"loss"}
    assert record.final["val_loss"] == record.history["val_loss"][-1]
    with pytest.raises(ValueError, match=r"Cannot train from step 12"):
        train_from_step(
            model, 12, compile_config=config, x=x, y=y, epochs=3, batch_size=16
        )


def test_training_record_summary_for_messages():
    record = TrainingRecord({}, 1, 4, 12.34, None, {}, {}, {"accuracy": 0.98123})
    assert record.summary() == "test accuracy 0.9812, 12.3s"
    untested = TrainingRecord({}, 1, 4, 2.0, None, {}, {}, None)
    assert untested.summary() == "test accuracy None, 2.0s"
