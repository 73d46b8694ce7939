"""keras_lottery.gradual: GradualPruning and PruningSummaries during fit."""

import copy
import glob
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.errors import ConfigError
from keras_lottery.gradual import GradualPruning, PruningSummaries
from keras_lottery.pruning_schedules import (
    ConstantSparsity,
    OneShot,
    PolynomialDecay,
)
from tests.conftest import tensorflow_only
from tests.helpers import classification_data, mlp, to_numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _compiled(optimizer=None, steps_per_execution=1):
    model = mlp()
    model.compile(
        optimizer or keras.optimizers.SGD(0.05, momentum=0.9),
        "sparse_categorical_crossentropy",
        steps_per_execution=steps_per_execution,
    )
    return model


def _counts(model):
    return {n: int(m.sum()) for n, m in kl.pruning.get_masks(model).items()}


def _fit(model, callbacks, epochs=3, initial_epoch=0):
    x, y = classification_data(n=64)  # 4 steps per epoch at batch 16
    return model.fit(
        x,
        y,
        batch_size=16,
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )


def _poison(model, layer, weight):
    (variable,) = [
        v for v in model.get_layer(layer).weights if v.path.endswith("/" + weight)
    ]
    variable.assign(np.full(variable.shape, np.nan, "float32"))


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_divergence_stops_the_fit_naming_the_epoch():
    from keras_lottery.errors import DivergenceError

    model = _compiled()
    _poison(model, "fc2", "bias")  # not pruned: only the epoch end sees it
    pruning = GradualPruning(ConstantSparsity(0.5, begin_step=100, frequency=1))
    with pytest.raises(DivergenceError, match="GradualPruning at epoch 1"):
        _fit(model, [pruning], epochs=3)
    model = _compiled()
    _poison(model, "fc1", "kernel")
    with pytest.raises(DivergenceError, match="'fc1'"):  # at the prune step
        _fit(model, [GradualPruning(OneShot(0.5, at_step=1))], epochs=1)


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_exact_counts_at_every_prune_step_with_exclusions_and_overrides():
    model = _compiled()
    schedule = PolynomialDecay(0.0, 0.75, begin_step=2, end_step=10, frequency=2)
    pruning = GradualPruning(
        schedule,
        exclude=["fc1"],
        layer_schedules={"o*": OneShot(0.5, at_step=5)},
    )
    _fit(model, [pruning])
    assert [e["step"] for e in pruning.events] == [2, 4, 5, 6, 8, 10]
    fc2 = [e["layers"]["fc2"] for e in pruning.events]
    # fc2 (256 weights) alone in the global pool: round(density * 256) kept.
    expected = [round(schedule.density(t) * 256) / 256 for t in (2, 4, 4, 6, 8, 10)]
    assert fc2 == expected
    assert [e["layers"]["out"] for e in pruning.events] == [1, 1, 0.5, 0.5, 0.5, 0.5]
    assert _counts(model) == {"fc1": 128, "fc2": 64, "out": 24}


@pytest.mark.parametrize(
    "optimizer",
    [
        pytest.param(lambda: keras.optimizers.SGD(0.05, momentum=0.9), id="sgd"),
        pytest.param(
            lambda: keras.optimizers.Adam(0.01),
            id="adam",
            # one of them on JAX and PyTorch too
            marks=[pytest.mark.backend_neutral, pytest.mark.backend_core],
        ),
        pytest.param(
            lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1), id="adamw"
        ),
    ],
)
def test_pruned_weights_stay_exactly_zero(optimizer):
    model = _compiled(optimizer())
    pruning = GradualPruning(ConstantSparsity(0.6, begin_step=1, frequency=3))
    _fit(model, [pruning], epochs=2)
    assert len(pruning.events) == 3  # steps 1, 4, 7
    for layer in kl.pruning.masked_layers(model):
        mask = layer.get_mask()
        assert np.all(to_numpy(layer.raw_kernel)[~mask] == 0), layer.name
        assert np.any(to_numpy(layer.raw_kernel)[mask] != 0)
    assert kl.pruning.sparsity_report(model).remaining == round(0.4 * 432)


def test_steps_per_execution_prunes_after_the_execution_that_crossed_the_step():
    # 4 steps per epoch run as executions of 3 + 1: steps 3, 4, 7, 8, ...
    model = _compiled(steps_per_execution=3)
    pruning = GradualPruning(ConstantSparsity(0.5, begin_step=2, frequency=100))
    pruning_late = GradualPruning(OneShot(0.75, at_step=5), layers=["fc2"])
    _fit(model, [pruning, pruning_late], epochs=2)
    assert [e["step"] for e in pruning.events] == [3]
    assert [e["step"] for e in pruning_late.events] == [7]
    assert _counts(model)["fc2"] == 64


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_resume_mid_schedule_gives_bit_identical_masks(tmp_path):
    def schedule():
        return PolynomialDecay(0.2, 0.9, begin_step=1, end_step=11, frequency=2)

    keras.utils.set_random_seed(3)
    straight = _compiled(keras.optimizers.Adam(0.01))
    _fit(straight, [GradualPruning(schedule())], epochs=4)

    keras.utils.set_random_seed(3)
    first = _compiled(keras.optimizers.Adam(0.01))
    _fit(first, [GradualPruning(schedule())], epochs=2)
    path = str(tmp_path / "half.keras")
    first.save(path)
    resumed = keras.saving.load_model(path)
    second = GradualPruning(schedule())
    _fit(resumed, [second], epochs=4, initial_epoch=2)
    # The schedule continued from the optimizer's 8 steps, not from 0.
    assert [e["step"] for e in second.events] == [9, 11]
    for name, mask in kl.pruning.get_masks(straight).items():
        np.testing.assert_array_equal(kl.pruning.get_masks(resumed)[name], mask)
    for a, b in zip(straight.weights, resumed.weights, strict=True):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6, atol=1e-7)


def test_masks_are_in_place_for_epoch_end_checkpoints(tmp_path):
    model = _compiled()
    pattern = str(tmp_path / "epoch{epoch}.keras")
    # The checkpoint runs first at epoch end; the masks set at the last step of
    # epoch 1 (step 4) must already be in its file.
    saver = keras.callbacks.ModelCheckpoint(pattern)
    _fit(model, [saver, GradualPruning(OneShot(0.7, at_step=4))], epochs=2)
    saved = keras.saving.load_model(str(tmp_path / "epoch1.keras"))
    assert kl.pruning.sparsity_report(saved).remaining == round(0.3 * 432)


@pytest.mark.backend_neutral
def test_deep_copy_and_refusals():
    pruning = GradualPruning(OneShot(0.5), exclude=["out"], pattern="2:4")
    summaries = PruningSummaries(pruning)
    copies = copy.deepcopy([pruning, summaries])
    assert copies[1].pruning is copies[0] and copies[0].schedule == OneShot(0.5)
    with pytest.raises(ConfigError, match="scope must be one of"):
        GradualPruning(OneShot(0.5), scope="all")
    with pytest.raises(ConfigError, match="Invalid sparsity pattern '3:2'"):
        GradualPruning(OneShot(0.5), pattern="3:2")
    with pytest.raises(ConfigError, match="exclude entry 'conv\\*' matches no"):
        _fit(_compiled(), [GradualPruning(OneShot(0.5), exclude=["conv*"])], 1)
    with pytest.raises(ConfigError, match="no layer left to prune"):
        _fit(_compiled(), [GradualPruning(OneShot(0.5), exclude=["*"])], 1)


def test_summaries_add_densities_to_the_history():
    model = _compiled()
    pruning = GradualPruning(ConstantSparsity(0.5, begin_step=4, frequency=100))
    history = _fit(model, [pruning, PruningSummaries(pruning)], epochs=2)
    assert history.history["density"] == [round(0.5 * 432) / 432] * 2
    assert history.history["density/fc1"][0] == _counts(model)["fc1"] / 128


@tensorflow_only
def test_summaries_write_tensorboard_scalars(tmp_path):
    import tensorflow as tf

    model = _compiled()
    pruning = GradualPruning(ConstantSparsity(0.5, begin_step=2, frequency=3))
    logs = str(tmp_path / "logs")
    callbacks = [
        pruning,
        PruningSummaries(pruning, logs),
        keras.callbacks.TensorBoard(logs),
    ]
    _fit(model, callbacks, epochs=2)
    scalars = {}
    for path in glob.glob(os.path.join(logs, "pruning", "events.out.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, []).append((event.step, number))
    assert [s for s, _ in scalars["pruning/density"]] == [2, 4, 5, 8]
    assert scalars["pruning/density"][0][1] == pytest.approx(216 / 432)
    assert set(scalars) == {"pruning/density"} | {
        f"pruning/density/{n}" for n in ("fc1", "fc2", "out")
    }
    # keras.callbacks.TensorBoard (listed after) logged the epoch densities too.
    assert glob.glob(os.path.join(logs, "train", "events.out.*"))


MIRRORED = textwrap.dedent(
    """
    import os
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_lottery as kl
    from keras_lottery.gradual import GradualPruning
    from keras_lottery.pruning_schedules import PolynomialDecay
    from tests.helpers import classification_data, mlp

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x, y = classification_data(n=128)
    with strategy.scope():
        model = mlp()
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                      "sparse_categorical_crossentropy")
    schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=8, frequency=2)
    pruning = GradualPruning(schedule)
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[pruning])
    # Step 0 (sparsity 0) leaves the masks as they are: not an event.
    assert [e["step"] for e in pruning.events] == [2, 4, 6, 8], pruning.events
    assert kl.pruning.sparsity_report(model).remaining == round(0.2 * 432)
    local = strategy.experimental_local_results
    for layer in kl.pruning.masked_layers(model):
        masks = [m.numpy() for m in local(layer.mask.value)]
        kernels = [k.numpy() for k in local(layer.raw_kernel.value)]
        assert len(masks) == 2
        np.testing.assert_array_equal(masks[0], masks[1])
        np.testing.assert_array_equal(kernels[0], kernels[1])
        assert np.all(kernels[0][~masks[0]] == 0)
    print("MIRRORED_OK")
    """
)


@pytest.mark.slow  # ~18 s: a fresh TensorFlow process with two logical CPUs
@tensorflow_only
def test_gradual_pruning_under_mirrored_strategy_on_two_cpus():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "MIRRORED_OK" in done.stdout, done.stderr[-3000:]


def test_structured_patterns_during_fit():
    model = _compiled()
    blocks = GradualPruning(OneShot(0.5, at_step=2), pattern="4x1")
    _fit(model, [blocks], epochs=1)
    assert kl.pruning.sparsity_report(model).remaining == 4 * round(0.5 * 432 / 4)
    for name, mask in kl.pruning.get_masks(model).items():
        tiles = mask.reshape(mask.shape[0] // 4, 4, -1).sum(axis=1)
        assert set(np.unique(tiles)) <= {0, 4}, name
    model = _compiled()
    _fit(model, [GradualPruning(OneShot(0.5, at_step=2), pattern="2:4")], epochs=1)
    for mask in kl.pruning.get_masks(model).values():
        groups = mask.reshape(mask.shape[0] // 4, 4, -1).sum(axis=1)
        np.testing.assert_array_equal(groups, 2)
