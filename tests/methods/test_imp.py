"""keras_lottery.methods.imp: iterative magnitude pruning with rewinding."""

import keras
import numpy as np
import pytest

import keras_lottery.models
from keras_lottery import pruning
from keras_lottery.config import ConfigError, PruningConfig, RunConfig, load_config
from keras_lottery.methods import imp as imp_method
from keras_lottery.methods.imp import IterativeMagnitudePruning, rounds_for
from keras_lottery.pruning import sync_state
from keras_lottery.steps import Step
from tests.conftest import tensorflow_only
from tests.helpers import classification_data, mlp, weights_by_path

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _compiled_mlp(**kwargs):
    model = mlp(**kwargs)
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def _imp(**kwargs):
    """An IMP driver without controls (they triple the training) unless asked."""
    return IterativeMagnitudePruning(**{"baselines": [], "verbose": 0, **kwargs})


@pytest.mark.parametrize(
    "scope", [pytest.param("layerwise", marks=pytest.mark.core_covered), "global"]
)
def test_sparsity_after_n_rounds_is_exact(scope):
    x, y = classification_data(n=64, inputs=10, classes=5)
    model = _compiled_mlp(inputs=10, hidden=20, outputs=5)
    totals = {lyr.name: lyr.total for lyr in pruning.sparsity_report(model).layers}
    imp = _imp(fraction=0.2, rounds=4, scope=scope, layer_fractions={"out": 0.1})
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

    imp = _imp(fraction=0.5, rounds=3, rewind="2it")
    result = imp.run(
        model, x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Check()]
    )
    assert zero_after_round == [True] * 4
    ticket = result.ticket
    assert ticket.metadata["method"] == "imp" and ticket.metadata["round"] == 3
    assert ticket.metadata["scope"] == "layerwise"  # the default, as in a config
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

    imp = _imp(fraction=0.3, rounds=2, rewind="6it")
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

    imp = _imp(fraction=0.3, rounds=1, rewind="8it")
    imp.run(model, x, y, epochs=3, batch_size=16, verbose=0, callbacks=[LR()])
    dense, pruned = rates[:12], rates[12:]
    assert len(dense) == 12 and dense[0] == 0.5 and dense[-1] == pytest.approx(0.001)
    # Retraining covers steps 8..11 with the schedule continuing from step 8,
    # not restarting at step 0.
    assert pruned == pytest.approx(dense[8:])
    assert pruned != pytest.approx(dense[:4])


@pytest.mark.core_covered
def test_baselines_are_trained_reported_and_saved(tmp_path):
    x, y = classification_data()  # 3 classes, linearly separable
    model = _compiled_mlp()
    imp = IterativeMagnitudePruning(
        fraction=0.5, rounds=1, checkpoint_dir=str(tmp_path), verbose=0
    )  # default baselines: both controls, as in a config
    result = imp.run(
        model,
        x,
        y,
        epochs=6,
        batch_size=16,
        verbose=0,
        validation_data=(x[:20], y[:20]),
        test_data=(x[:30], y[:30]),
    )
    round1 = result.rounds[1]
    assert list(round1.baselines) == ["random_reinit", "random_prune"]
    records = [round1.ticket, *round1.baselines.values()]
    for record in records:
        assert record.steps == 36 and "val_loss" in record.final
    # Three different trainings (not one record copied), each well above chance.
    assert len({record.test["loss"] for record in records}) == 3
    assert min(record.test["accuracy"] for record in records) > 0.6
    # What the run folder says is what the run returned.
    points = imp_method.points(imp_method.summarize(str(tmp_path)))
    assert [p["weights_remaining"] for p in points] == [1.0, pytest.approx(0.5, 0.05)]
    assert points[1]["accuracy"] == round1.ticket.test["accuracy"]
    assert points[1]["controls"] == {
        name: record.test["accuracy"] for name, record in round1.baselines.items()
    }
    accuracy = round1.baselines["random_prune"].test["accuracy"]
    assert f"{accuracy:.4f}" in result.table().splitlines()[2]


def test_target_sparsity_derives_rounds():
    assert rounds_for(0.2, None, 0.9) == 11  # 0.8**11 = 0.086
    assert rounds_for(0.5, None, 0.75) == 2
    assert rounds_for(0.2, 3, None) == 3
    assert _imp(fraction=0.5, target_sparsity=0.75).rounds == 2


def test_driver_defaults_are_the_config_defaults():
    imp = IterativeMagnitudePruning(rounds=1)
    section, run = PruningConfig(), RunConfig()
    assert imp.fraction == section.fraction
    assert imp.scope == section.scope == "layerwise"
    assert imp.rewind == Step.parse(section.rewind)
    assert imp.evaluate_at == section.evaluate_at
    assert imp.baselines == tuple(run.baselines) == ("random_reinit", "random_prune")
    assert imp.seed == run.seed and imp.layers is None


def test_from_config_resolves_layers_and_patterns_against_the_model():
    config = load_config(
        None,
        [
            "pruning.rounds=2",
            "pruning.scope=global",
            "pruning.layers=[fc1, fc2]",
            "pruning.layer_fractions={'f*': 0.3}",
            "pruning.rewind=2it",
            "baselines=[shuffle_masks]",
            "seed=7",
        ],
    )
    imp = IterativeMagnitudePruning.from_config(config, mlp(), verbose=0)
    assert imp.rounds == 2 and imp.scope == "global" and imp.rewind == Step(2, "it")
    assert imp.layers == ["fc1", "fc2"]
    assert imp.layer_fractions == {"fc1": 0.3, "fc2": 0.3}
    assert imp.baselines == ("shuffle_masks",) and imp.seed == 7
    bad = load_config(
        None,
        [
            "pruning.rounds=2",
            "pruning.layers=[out]",
            "pruning.layer_fractions={zz: 0.3}",
        ],
    )
    with pytest.raises(
        ValueError,
        match=r"pruning.layer_fractions key 'zz' matches no masked layer; "
        r"layers are \['fc1', 'fc2', 'out'\]",
    ):
        IterativeMagnitudePruning.from_config(bad, mlp())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(fraction=1.0, rounds=1), r"'pruning.fraction' must be a number in"),
        (dict(fraction=0.2), "exactly one of 'pruning.rounds'"),
        (dict(rounds=1, target_sparsity=0.5), "exactly one of 'pruning.rounds'"),
        (dict(target_sparsity=1.0), r"'pruning.target_sparsity' must be null or"),
        (dict(rounds=-1), r"'pruning.rounds' must be null or an int >= 1"),
        (dict(rounds=1, scope="nope"), r"'pruning.scope' must be one of"),
        (dict(rounds=1, baselines=["shuffle"]), r"'baselines' must be names from"),
        (dict(rounds=1, rewind="2 epochs"), r"'pruning.rewind' must be a step"),
        (dict(rounds=1, layer_fractions={"out": 0}), r"\(see 'out'\); got"),
        (dict(rounds=1, evaluate_at="last"), r"'pruning.evaluate_at' must be one of"),
    ],
)
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        IterativeMagnitudePruning(**kwargs)


def test_rewind_past_end_of_training_fails_before_any_training():
    x, y = classification_data(n=64)
    model = _compiled_mlp()
    before = weights_by_path(model)
    imp = _imp(fraction=0.2, rounds=1, rewind="3ep")
    with pytest.raises(ValueError, match="3ep.*not before the end of training"):
        imp.run(model, x, y, epochs=3, batch_size=16, verbose=0)
    after = weights_by_path(model)
    assert all(np.array_equal(before[p], after[p]) for p in before)


def test_uncompiled_model_and_missing_epochs_are_errors():
    x, y = classification_data()
    imp = _imp(fraction=0.2, rounds=1)
    with pytest.raises(ValueError, match="Compile"):
        imp.run(mlp(), x, y, epochs=1)
    with pytest.raises(ValueError, match="epochs"):
        imp.run(_compiled_mlp(), x, y)
    with pytest.raises(ValueError, match="initial_epoch"):
        imp.run(_compiled_mlp(), x, y, epochs=2, initial_epoch=1)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _imp(rounds=1, extra_rewinds=["2it"])


def test_interrupted_run_resumes_exactly_like_an_uninterrupted_one(tmp_path):
    x, y = classification_data(n=128)

    def fresh():
        keras.utils.set_random_seed(5)
        return _compiled_mlp()

    def imp(directory):
        return _imp(
            fraction=0.4, rounds=3, rewind="2it", seed=3, checkpoint_dir=str(directory)
        )

    kwargs = {"epochs": 2, "batch_size": 16, "verbose": 0}
    full = imp(tmp_path / "full").run(fresh(), x, y, **kwargs)

    fits = []  # outside the callback: IMP deep-copies callbacks every round

    class Interrupt(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            fits.append(1)
            if len(fits) == 3:  # during round 2
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        imp(tmp_path / "cut").run(fresh(), x, y, callbacks=[Interrupt()], **kwargs)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir() if p.is_dir()) == [
        "round_000",
        "round_001",
    ]
    resumed = imp(tmp_path / "cut").run(fresh(), x, y, **kwargs)
    assert [r.round for r in resumed.rounds] == [0, 1, 2, 3]
    for name, mask in full.ticket.masks.items():
        np.testing.assert_array_equal(resumed.ticket.masks[name], mask)
    for a, b in zip(full.ticket.weights, resumed.ticket.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    # Every round's outcome too, the ones replayed from disk and the ones retrained.
    for a, b in zip(full.rounds, resumed.rounds, strict=True):
        assert a.layers_remaining == b.layers_remaining
        assert a.ticket.history == b.ticket.history


@tensorflow_only  # TensorBoard writes with tf.summary; the logic is backend-free
def test_tensorboard_logs_each_round_and_control_to_its_own_folder(tmp_path, capsys):
    x, y = classification_data(n=32)
    logs = tmp_path / "logs"
    imp = IterativeMagnitudePruning(
        fraction=0.5, rounds=1, baselines=["random_reinit"], verbose=1
    )
    imp.run(
        _compiled_mlp(),
        x,
        y,
        epochs=1,
        batch_size=16,
        verbose=0,
        callbacks=[keras.callbacks.TensorBoard(str(logs))],
    )
    folders = sorted(
        str(p.parent.relative_to(logs)) for p in logs.rglob("events.out.*")
    )
    assert folders == [
        "round_000/ticket/train",
        "round_001/random_reinit/train",
        "round_001/ticket/train",
    ]
    out = capsys.readouterr().out
    assert out.index("training round_001/ticket") < out.index(
        "training round_001/random_reinit"
    )


def test_learning_rate_rewinding_keeps_trained_weights_and_restarts_the_schedule():
    x, y = classification_data(n=64)  # 4 steps per epoch at batch 16
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([6], [0.05, 0.001])
    model = mlp()
    model.compile(keras.optimizers.SGD(schedule), "sparse_categorical_crossentropy")
    rates, starts = [], []

    class Spy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            starts.append(weights_by_path(self.model))

        def on_train_batch_begin(self, batch, logs=None):
            sync_state(self.model)
            rates.append(
                float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            )

    class Trained(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            sync_state(self.model)
            trained.append(weights_by_path(self.model))

    trained = []
    imp = _imp(fraction=0.5, rounds=1, rewind="4it", rewind_mode="learning_rate")
    result = imp.run(
        model, x, y, epochs=2, batch_size=16, verbose=0, callbacks=[Spy(), Trained()]
    )
    dense, pruned = rates[:8], rates[8:]
    assert pruned == pytest.approx(dense[4:])  # the schedule restarts at step 4
    assert result.rounds[1].ticket.steps == 4
    masks = result.ticket.masks
    for path, value in starts[1].items():
        if path.endswith("mask"):
            continue
        expected = trained[0][path]
        layer = path.split("/")[-2]
        if path.endswith("kernel") and layer in masks:
            expected = expected * masks[layer]
        # Round 1 starts from round 0's trained weights (pruned), not step 4.
        np.testing.assert_array_equal(value, expected)
    assert result.ticket.metadata["rewind_mode"] == "learning_rate"
    lenet = keras_lottery.models.get(
        "lenet_300_100", num_classes=3, input_shape=(8,), hidden=[8, 4]
    )
    config = load_config(
        None, ["pruning.rewind_mode=learning_rate", "pruning.rounds=1"]
    )
    driver = IterativeMagnitudePruning.from_config(config, lenet)
    assert driver.rewind_mode == "learning_rate"
    with pytest.raises(ConfigError, match="'pruning.rewind_mode' must be one of"):
        PruningConfig(rewind_mode="optimizer")


@pytest.mark.core_covered  # the backend-dependent part: tests/tweaks' transforms
def test_a_transformed_ticket_is_returned_as_it_trained_and_resumed(tmp_path):
    from keras_lottery.config import RetrainConfig
    from keras_lottery.training import evaluate
    from keras_lottery.tweaks.retraining import RetrainPlan

    x, y = classification_data(n=64)
    swish = RetrainPlan(RetrainConfig(tweaks=["swish"]))
    imp = _imp(fraction=0.5, rounds=1, retrain=swish, checkpoint_dir=str(tmp_path))
    model = _compiled_mlp()
    result = imp.run(model, x, y, epochs=1, batch_size=16, test_data=(x, y), verbose=0)
    network = result.network
    assert network.get_layer("fc1").activation is keras.activations.silu
    assert model.get_layer("fc1").activation is keras.activations.relu
    network.compile(loss=model.loss, metrics=["accuracy"])
    tested = result.rounds[-1].ticket.test["accuracy"]
    assert evaluate(network, (x, y))["accuracy"] == pytest.approx(tested)
    for layer in ("fc1", "fc2", "out"):  # the ticket's layers: the same values
        for a, b in zip(
            network.get_layer(layer).weights,
            model.get_layer(layer).weights,
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # Resumed after its last round (nothing trains): read from transformed.npz.
    again = _imp(fraction=0.5, rounds=1, retrain=swish, checkpoint_dir=str(tmp_path))
    resumed = again.run(_compiled_mlp(), x, y, epochs=1, batch_size=16, verbose=0)
    for a, b in zip(resumed.network.weights, network.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (
        _imp(fraction=0.5, rounds=1)
        .run(_compiled_mlp(), x, y, epochs=1, batch_size=16, verbose=0)
        .network
        is None
    )  # no transform: the model holds the trained ticket
