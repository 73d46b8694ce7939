import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.imp import (
    IterativeMagnitudePruning,
    infer_steps_per_epoch,
    rounds_for,
)
from keras_lottery.rewind import RewindCheckpoint, Step, restore_state, sync_state
from tests.helpers import classification_data, mlp, small_convnet

pytestmark = pytest.mark.backend_neutral


def _compiled_mlp(**kwargs):
    model = mlp(**kwargs)
    model.compile(
        keras.optimizers.Adam(1e-2),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _weights(model):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.weights}


@pytest.mark.parametrize(
    "value,expected",
    [
        (0, Step(0, "it")),
        ("0", Step(0, "it")),
        ("500it", Step(500, "it")),
        ("2ep", Step(2, "ep")),
        (" 3 ep ", Step(3, "ep")),
        ("0ep", Step(0, "it")),
    ],
)
def test_step_parsing(value, expected):
    assert Step.parse(value) == expected
    assert Step.parse(value).iterations(10) == (
        expected.amount * 10 if expected.unit == "ep" else expected.amount
    )


@pytest.mark.parametrize("bad", ["-1it", "2 epochs", "1.5ep", None, -3, "ep"])
def test_bad_steps_are_rejected(bad):
    with pytest.raises(ValueError):
        Step.parse(bad)


@pytest.mark.parametrize("rewind,expected_step", [("0it", 0), ("5it", 5), ("2ep", 6)])
def test_rewind_checkpoint_captures_full_state_at_the_point(rewind, expected_step):
    x, y = classification_data(n=48)  # 3 steps per epoch at batch 16
    model = small_convnet()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    images = np.random.default_rng(0).normal(size=(48, 8, 8, 3)).astype("float32")
    seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(_weights(self.model))

        def on_train_batch_end(self, batch, logs=None):
            sync_state(self.model)
            seen.append(_weights(self.model))

    capture = RewindCheckpoint(rewind)
    model.fit(
        images, y, epochs=3, batch_size=16, verbose=0, callbacks=[Snapshot(), capture]
    )
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
        kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
        mask = masks[layer.name]
        np.testing.assert_array_equal(layer.get_mask(), mask)
        np.testing.assert_array_equal(kernel[mask], state[layer.raw_kernel.path][mask])
        assert np.all(kernel[~mask] == 0)
        bias = keras.ops.convert_to_numpy(layer.bias)
        np.testing.assert_array_equal(bias, state[layer.bias.path])


@pytest.mark.parametrize("scope", ["layerwise", "global"])
def test_sparsity_after_n_rounds_is_exact(scope):
    x, y = classification_data(n=64, inputs=10, classes=5)
    model = _compiled_mlp(inputs=10, hidden=20, outputs=5)
    totals = {lyr.name: lyr.total for lyr in pruning.sparsity_report(model).layers}
    imp = IterativeMagnitudePruning(
        fraction=0.2, rounds=4, scope=scope, layer_fractions={"out": 0.1}, verbose=0
    )
    result = imp.run(model, x, y, epochs=1, batch_size=32, verbose=0)
    assert [r.round for r in result.rounds] == [0, 1, 2, 3, 4]
    for record in result.rounds:
        n = record.round
        remaining = {
            name: frac * totals[name] for name, frac in record.layers_remaining.items()
        }
        assert abs(remaining["out"] - totals["out"] * 0.9**n) <= 1
        if scope == "layerwise":
            for name in ("fc1", "fc2"):
                assert abs(remaining[name] - totals[name] * 0.8**n) <= 1
        else:
            pool = totals["fc1"] + totals["fc2"]
            assert abs(remaining["fc1"] + remaining["fc2"] - pool * 0.8**n) <= 1


def test_pruned_weights_are_zero_after_every_round_and_ticket_matches():
    x, y = classification_data()
    model = _compiled_mlp()
    zero_after_round = []

    class Check(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            ok = all(
                np.all(keras.ops.convert_to_numpy(lyr.raw_kernel)[~lyr.get_mask()] == 0)
                for lyr in pruning.masked_layers(self.model)
            )
            zero_after_round.append(ok)

    imp = IterativeMagnitudePruning(fraction=0.5, rounds=3, rewind="2it", verbose=0)
    result = imp.run(
        model, x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Check()]
    )
    assert zero_after_round == [True] * 4
    ticket = result.ticket
    assert ticket.metadata["method"] == "imp" and ticket.metadata["round"] == 3
    assert ticket.sparsity == pytest.approx(1 - 0.5**3, abs=0.01)
    for name, mask in pruning.get_masks(model).items():
        np.testing.assert_array_equal(ticket.masks[name], mask)


def test_each_round_retrains_steps_k_to_t_with_a_fresh_optimizer():
    x, y = classification_data(n=64)  # 4 steps per epoch at batch 16
    model = _compiled_mlp()
    optimizers = []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            optimizers.append(self.model.optimizer)

    imp = IterativeMagnitudePruning(fraction=0.3, rounds=2, rewind="6it", verbose=0)
    result = imp.run(model, x, y, epochs=3, batch_size=16, verbose=0, callbacks=[Spy()])
    assert [r.ticket.steps for r in result.rounds] == [12, 6, 6]
    assert len({id(o) for o in optimizers}) == 3


def test_learning_rate_schedule_continues_from_the_rewind_point():
    x, y = classification_data(n=64)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([8], [0.5, 0.001])
    model = mlp()
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    rates = []

    class LR(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            sync_state(self.model)
            rates.append(
                float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            )

    imp = IterativeMagnitudePruning(fraction=0.3, rounds=1, rewind="8it", verbose=0)
    imp.run(model, x, y, epochs=3, batch_size=16, verbose=0, callbacks=[LR()])
    dense, pruned = rates[:12], rates[12:]
    assert len(dense) == 12 and dense[0] == 0.5 and dense[-1] == pytest.approx(0.001)
    # Retraining covers steps 8..11 with the schedule continuing from step 8,
    # not restarting at step 0.
    assert pruned == pytest.approx(dense[8:])
    assert pruned != pytest.approx(dense[:4])


def test_baselines_are_trained_and_reported():
    x, y = classification_data()
    model = _compiled_mlp()
    imp = IterativeMagnitudePruning(
        fraction=0.5, rounds=1, verbose=0, baselines=["random_reinit", "random_prune"]
    )
    result = imp.run(
        model,
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
        validation_data=(x[:20], y[:20]),
        test_data=(x[:30], y[:30]),
    )
    round1 = result.rounds[1]
    assert set(round1.baselines) == {"random_reinit", "random_prune"}
    for record in [round1.ticket, *round1.baselines.values()]:
        assert 0 <= record.test["accuracy"] <= 1 and record.best_epoch == 0
        assert "val_loss" in record.final
    assert "random_prune accuracy" in result.table()


def test_target_sparsity_derives_rounds():
    assert rounds_for(0.2, None, 0.9) == 11  # 0.8**11 = 0.086
    assert rounds_for(0.5, None, 0.75) == 2
    assert rounds_for(0.2, 3, None) == 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fraction=1.0, rounds=1), "fraction"),
        (dict(fraction=0.2), "exactly one"),
        (dict(fraction=0.2, rounds=1, target_sparsity=0.5), "exactly one"),
        (dict(fraction=0.2, target_sparsity=1.0), "target_sparsity"),
        (dict(fraction=0.2, rounds=-1), "rounds"),
        (dict(fraction=0.2, rounds=1, scope="nope"), "scope"),
        (dict(fraction=0.2, rounds=1, baselines=["shuffle"]), "baseline"),
        (dict(fraction=0.2, rounds=1, rewind="2 epochs"), "step"),
        (dict(fraction=0.2, rounds=1, layer_fractions={"out": 0}), "out"),
    ],
)
def test_bad_arguments_fail_before_training(kwargs, match):
    with pytest.raises(ValueError, match=match):
        IterativeMagnitudePruning(**kwargs)


def test_rewind_past_end_of_training_fails_before_any_training():
    x, y = classification_data(n=64)
    model = _compiled_mlp()
    before = _weights(model)
    imp = IterativeMagnitudePruning(fraction=0.2, rounds=1, rewind="3ep", verbose=0)
    with pytest.raises(ValueError, match="3ep.*not before the end of training"):
        imp.run(model, x, y, epochs=3, batch_size=16, verbose=0)
    after = _weights(model)
    assert all(np.array_equal(before[p], after[p]) for p in before)


def test_steps_per_epoch_inference():
    x = np.zeros((100, 3))
    assert infer_steps_per_epoch(x, {"batch_size": 30}) == 4
    assert infer_steps_per_epoch(x, {"batch_size": 30, "validation_split": 0.2}) == 3
    assert infer_steps_per_epoch(x, {}) == 4  # Keras's default batch size 32
    assert infer_steps_per_epoch(x, {"steps_per_epoch": 7}) == 7


def test_uncompiled_model_and_missing_epochs_are_errors():
    x, y = classification_data()
    imp = IterativeMagnitudePruning(fraction=0.2, rounds=1, verbose=0)
    with pytest.raises(ValueError, match="Compile"):
        imp.run(mlp(), x, y, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        imp.run(_compiled_mlp(), x, y)


def test_interrupted_run_resumes_with_identical_masks(tmp_path):
    x, y = classification_data(n=128)

    def fresh():
        keras.utils.set_random_seed(5)
        return _compiled_mlp()

    def imp(directory):
        return IterativeMagnitudePruning(
            fraction=0.4,
            rounds=3,
            rewind="2it",
            seed=3,
            checkpoint_dir=str(directory),
            verbose=0,
        )

    full = imp(tmp_path / "full").run(fresh(), x, y, epochs=2, batch_size=16, verbose=0)

    fits = []  # outside the callback: IMP deep-copies callbacks every round

    class Interrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)
            if len(fits) == 3:  # during round 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imp(tmp_path / "cut").run(
            fresh(), x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Interrupt()]
        )
    assert sorted(p.name for p in (tmp_path / "cut").iterdir() if p.is_dir()) == [
        "round_000",
        "round_001",
    ]
    resumed = imp(tmp_path / "cut").run(
        fresh(), x, y, epochs=2, batch_size=16, verbose=0
    )
    assert [r.round for r in resumed.rounds] == [0, 1, 2, 3]
    for name, mask in full.ticket.masks.items():
        np.testing.assert_array_equal(resumed.ticket.masks[name], mask)
    for a, b in zip(full.ticket.weights, resumed.ticket.weights, strict=True):
        np.testing.assert_array_equal(a, b)
