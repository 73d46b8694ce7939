"""keras_lottery.callbacks: rewind capture, exact stops, the training recorder
and Continuous Sparsification's soft-mask callbacks."""

import copy
import os

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.callbacks import (
    RewindCheckpoint,
    SparsityMonitor,
    StopAtIteration,
    StopOnNonFiniteLogits,
    TemperatureSchedule,
    TrainingRecorder,
    phase_callbacks,
    phase_name,
)
from keras_lottery.pruning import sync_state
from keras_lottery.rewind import capture_state, restore_state
from keras_lottery.soft_masks import remaining_fraction, soft_layers
from tests.helpers import (
    classification_data,
    images,
    mlp,
    small_convnet,
    soft_convnet,
    to_numpy,
    weights_by_path,
)

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _compiled_mlp():
    model = mlp()
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


# --------------------------------------------------------------------------- rewind


@pytest.mark.parametrize("rewind,expected_step", [("0it", 0), ("5it", 5), ("2ep", 6)])
def test_rewind_checkpoint_captures_full_state_at_the_point(rewind, expected_step):
    _, y = classification_data(n=48)  # 3 steps per epoch at batch 16
    model = small_convnet()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(48, 8, 8, 3)).astype("float32")
    seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(weights_by_path(self.model))

        def on_train_batch_end(self, batch, logs=None):
            sync_state(self.model)
            seen.append(weights_by_path(self.model))

    capture = RewindCheckpoint(rewind)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[Snapshot(), capture])
    expected = seen[expected_step]
    state = dict(zip([v.path for v in model.weights], capture.state, strict=True))
    assert any("moving_mean" in p for p in state)  # batch-norm statistics included
    for path, value in expected.items():
        np.testing.assert_array_equal(state[path], value)


def test_restore_is_bitwise_for_survivors_and_keeps_masks():
    x, y = classification_data()
    model = _compiled_mlp()
    capture = RewindCheckpoint("3it")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[capture])
    masks = pruning.prune_magnitude(model, 0.5)
    restore_state(model, capture.state)
    state = dict(zip([v.path for v in model.weights], capture.state, strict=True))
    for layer in pruning.masked_layers(model):
        kernel = to_numpy(layer.raw_kernel)
        mask = masks[layer.name]
        np.testing.assert_array_equal(layer.get_mask(), mask)
        np.testing.assert_array_equal(kernel[mask], state[layer.raw_kernel.path][mask])
        assert np.all(kernel[~mask] == 0)
        np.testing.assert_array_equal(to_numpy(layer.bias), state[layer.bias.path])


def test_callbacks_deep_copy_and_work_after_copy():
    x = np.zeros((32, 3), "float32")
    y = np.zeros((32,), "int32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    capture = copy.deepcopy(RewindCheckpoint("3it"))
    stop = copy.deepcopy(StopAtIteration(5))
    steps = TrainingRecorder(keep_best=False)
    history = model.fit(
        x, y, batch_size=4, epochs=3, verbose=0, callbacks=[capture, stop, steps]
    )
    assert capture.state is not None
    # 8 steps per epoch: StopAtIteration(5) ends the first epoch after step 5.
    assert len(history.history["loss"]) == 1 and steps.steps == 5
    copy.deepcopy(RewindCheckpoint("2ep"))  # unbound callbacks hold no model


@pytest.mark.parametrize("rewind", ["3ep"])
def test_rewind_point_never_reached_warns_at_train_end(rewind):
    x, y = classification_data(n=32)  # 2 steps per epoch
    model = _compiled_mlp()
    capture = RewindCheckpoint(rewind)
    with pytest.warns(RuntimeWarning, match=f"rewind point {rewind} was never"):
        model.fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[capture])
    assert capture.state is None


def test_rewind_point_counts_from_the_start_of_this_fit():
    x, y = classification_data(n=32)  # 2 steps per epoch
    model = _compiled_mlp()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # optimizer at 4 updates
    by_epochs, by_steps = RewindCheckpoint("1ep"), RewindCheckpoint("3it")
    seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(capture_state(self.model))

    model.fit(
        x,
        y,
        epochs=4,
        initial_epoch=2,
        batch_size=16,
        verbose=0,
        callbacks=[Snapshot(), by_epochs, by_steps],
    )
    for got, want in zip(by_epochs.state, seen[1], strict=True):
        np.testing.assert_array_equal(got, want)  # after this fit's 2nd update
    for got, want in zip(by_steps.state, seen[2], strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.skipif(
    keras.backend.backend() == "torch",
    reason="Keras refuses steps_per_execution > 1 on the PyTorch backend",
)
def test_rewind_point_inside_an_execution_is_captured_at_its_end():
    x, y = classification_data(n=64)  # 4 steps per epoch, executions of 3 + 1
    model = mlp()
    model.compile("sgd", "sparse_categorical_crossentropy", steps_per_execution=3)
    capture = RewindCheckpoint("2it")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[capture])
    assert capture.state is not None and capture.late == 1


# --------------------------------------------------------------------------- recorder


def test_training_recorder_keeps_the_lowest_validation_loss_epoch():
    x, y = classification_data(n=64)
    model = _compiled_mlp()
    at_epoch_end = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            at_epoch_end.append(capture_state(self.model))

    recorder = TrainingRecorder(keep_best=True)
    history = model.fit(
        x,
        y,
        epochs=4,
        batch_size=16,
        verbose=0,
        validation_data=(x[:20], 2 - y[:20]),  # mislabelled: the loss moves around
        callbacks=[Snapshot(), recorder],
    )
    losses = history.history["val_loss"]
    best = int(np.argmin(losses))
    assert recorder.steps == 16 and recorder.best == pytest.approx(losses[best])
    for a, b in zip(recorder.state, at_epoch_end[best], strict=True):
        np.testing.assert_array_equal(a, b)
    plain = TrainingRecorder(keep_best=False)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[plain])
    assert plain.state is None and plain.steps == 4


# --------------------------------------------------------------------------- soft masks


def test_temperature_follows_the_schedule_exactly():
    soft = soft_convnet()
    x, y = images(16)
    seen = []

    class Read(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            sync_state(self.model)
            seen.append(float(to_numpy(soft_layers(self.model)[0].temperature)))

    schedule = TemperatureSchedule(200.0, 5)
    soft.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[schedule, Read()])
    assert seen == pytest.approx([200 ** (e / 4) for e in range(5)], rel=1e-6)
    assert seen[0] == 1.0 and seen[-1] == pytest.approx(200.0)
    soft.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[schedule, Read()])
    assert seen[5] == 1.0  # restarts at 1 with every fit (every round)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"final_temperature": 0.0}, "final_temperature must be a number > 0"),
        ({"final_temperature": True}, "final_temperature must be a number > 0"),
        ({"epochs": 1}, "epochs >= 2"),
    ],
)
def test_bad_temperature_schedules(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TemperatureSchedule(**{"final_temperature": 200.0, "epochs": 5, **kwargs})


def test_sparsity_monitor_logs_remaining_share_and_temperature():
    soft = soft_convnet(penalty=1e-2)
    x, y = images(16)
    callbacks = [TemperatureSchedule(50.0, 2), SparsityMonitor()]
    history = soft.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=callbacks)
    assert history.history["temperature"] == pytest.approx([1.0, 50.0])
    assert history.history["mask_remaining"][-1] == remaining_fraction(soft)


@pytest.mark.slow  # 23 s in the suite; tests/test_guards.py covers the guards
def test_non_finite_logits_stop_training_naming_the_layer():
    soft = soft_convnet()
    x, y = images(16)
    logits = soft_layers(soft)[0].mask_logits
    values = to_numpy(logits).copy()
    values.flat[0] = np.nan
    logits.assign(values)
    stop = StopOnNonFiniteLogits()
    history = soft.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[stop])
    assert len(history.history["loss"]) == 1
    assert stop.bad == "the mask logits of 'conv1' at epoch 1"
    healthy = soft_convnet()
    healthy.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[stop])
    assert stop.bad is None  # reset at every fit


def test_phase_callbacks_copy_and_point_tensorboard_to_the_phase():
    board, stop = keras.callbacks.TensorBoard("logs"), StopAtIteration(3)
    copies = phase_callbacks([board, stop], phase_name(3, "random_reinit"))
    assert copies[0] is not board and copies[1] is not stop
    assert copies[0].log_dir == os.path.join("logs", "round_003", "random_reinit")
    assert board.log_dir == "logs" and copies[1].total == 3
