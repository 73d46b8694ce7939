"""Instability analysis (keras_lottery.stability): interpolation, curves, copies."""

import keras
import numpy as np
import pytest

from keras_lottery import pruning, stability
from keras_lottery.config import ConfigError, RunConfig, StabilityConfig, load_config
from keras_lottery.data import Splits
from keras_lottery.recipes import Recipe
from keras_lottery.rewind import capture_state
from tests.helpers import classification_data, mlp, small_convnet

pytestmark = pytest.mark.backend_neutral


def _compiled(model, optimizer="sgd"):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer, loss, metrics=["accuracy"])
    return model


def _state(model):
    return capture_state(model)


def _shared_masks(*models, seed=0):
    rng = np.random.default_rng(seed)
    masks = {
        name: rng.random(mask.shape) < 0.5
        for name, mask in pruning.get_masks(models[0]).items()
    }
    for model in models:
        pruning.set_masks(model, masks)
    return masks


def _tiny_recipe(**overrides):
    rng = np.random.default_rng(0)
    x = rng.random((200, 6, 6, 1)).astype("float32")
    flat = x.reshape(200, -1)
    y = (flat[:, :18].mean(1) > flat[:, 18:].mean(1)).astype("int32")
    splits = Splits(x[:140], y[:140], x[140:160], y[140:160], x[160:], y[160:])
    config = load_config(
        None,
        [
            "model.options={hidden: [16, 8]}",
            "training.batch_size=20",
            "training.duration=2ep",
            "training.learning_rate=0.01",
        ]
        + [f"{k}={v}" for k, v in overrides.items()],
    )
    return Recipe(config, splits=splits)


# --------------------------------------------------------------------------- path


def test_interpolation_reproduces_the_endpoints_exactly():
    x, y = classification_data()
    a, b = _compiled(mlp()), _compiled(mlp())
    _shared_masks(a, b)
    state_a, state_b = _state(a), _state(b)
    assert not all(np.array_equal(u, v) for u, v in zip(state_a, state_b, strict=True))

    curve = stability.interpolation_curve(a, b, {"test": (x, y)}, points=3)
    acc_a = a.evaluate(x, y, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    acc_b = b.evaluate(x, y, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    assert curve.alphas == [0.0, 0.5, 1.0]
    assert curve.errors["test"][0] == pytest.approx(1.0 - acc_a, abs=1e-7)
    assert curve.errors["test"][-1] == pytest.approx(1.0 - acc_b, abs=1e-7)
    for before, after in zip(state_a, _state(a), strict=True):  # a is given back
        np.testing.assert_array_equal(before, after)

    probe = _compiled(mlp())
    for alpha, expected in ((0.0, state_a), (1.0, state_b)):
        stability.write_interpolation(probe, state_a, state_b, alpha)
        for got, want in zip(_state(probe), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    stability.write_interpolation(probe, state_a, state_b, 0.25)
    kernel = pruning.masked_layers(probe)[1].raw_kernel.path
    index = [v.path for v in probe.weights].index(kernel)
    np.testing.assert_allclose(
        _state(probe)[index], 0.75 * state_a[index] + 0.25 * state_b[index], rtol=1e-6
    )


def test_pruned_weights_stay_exactly_zero_along_the_path():
    a, b, probe = mlp(), mlp(), mlp()
    masks = _shared_masks(probe, seed=3)
    # Endpoint states whose raw kernels are non-zero at pruned positions.
    state_a, state_b = _state(a), _state(b)
    mask_index = {i: layer.name for i, layer in stability._mask_index(probe).items()}
    for state in (state_a, state_b):
        for i, name in mask_index.items():
            state[i] = masks[name]
    for alpha in (0.0, 0.3, 0.5, 1.0):
        stability.write_interpolation(probe, state_a, state_b, alpha)
        for layer in pruning.masked_layers(probe):
            kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
            mask = masks[layer.name]
            assert np.all(kernel[~mask] == 0)
            assert np.count_nonzero(kernel[mask]) == mask.sum()
            np.testing.assert_array_equal(layer.get_mask(), mask)


def test_batch_norm_statistics_are_interpolated():
    a, b, probe = small_convnet(), small_convnet(), small_convnet()
    rng = np.random.default_rng(0)
    for model in (a, b):
        bn = model.get_layer("bn1")
        bn.moving_mean.assign(rng.normal(size=4).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 2, size=4).astype("float32"))
    state_a, state_b = _state(a), _state(b)
    stability.write_interpolation(probe, state_a, state_b, 0.25)
    for name in ("moving_mean", "moving_variance"):
        value_a, value_b = (
            keras.ops.convert_to_numpy(getattr(m.get_layer("bn1"), name)).astype(
                np.float64
            )
            for m in (a, b)
        )
        want = (0.75 * value_a + 0.25 * value_b).astype(np.float32)
        got = keras.ops.convert_to_numpy(getattr(probe.get_layer("bn1"), name))
        np.testing.assert_array_equal(got, want)
        assert not np.array_equal(got, value_a)


def test_batch_norm_reestimation_averages_the_batch_statistics():
    model = small_convnet()
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(40, 8, 8, 3))
    x = x.astype("float32")
    used = stability.reestimate_batch_norm(model, (x, None), batches=3, batch_size=10)
    assert used == 3
    features = keras.Model(model.input, model.get_layer("conv1").output)
    outs = [keras.ops.convert_to_numpy(features(x[i : i + 10])) for i in (0, 10, 20)]
    bn = model.get_layer("bn1")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_mean),
        np.mean([o.mean(axis=(0, 1, 2)) for o in outs], axis=0),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(bn.moving_variance),
        np.mean([o.var(axis=(0, 1, 2)) for o in outs], axis=0),
        rtol=1e-4,
    )
    assert bn.momentum == 0.99  # restored


def test_curve_with_batch_norm_reestimation_at_every_point():
    a, b = small_convnet(), small_convnet()
    probe = _compiled(small_convnet())
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    state_a, state_b = _state(a), _state(b)
    with pytest.raises(ValueError, match="bn_data"):
        stability.curve_between_states(
            probe, state_a, state_b, {"t": (x, y)}, 3, bn_batches=2
        )
    curve = stability.curve_between_states(
        probe,
        state_a,
        state_b,
        {"t": (x, y)},
        3,
        bn_data=(x, y),
        bn_batches=2,
        bn_batch_size=16,
    )
    assert len(curve.errors["t"]) == 3
    # The probe holds the last point (a = 1, model b's weights) with statistics
    # recomputed from the two batches, not b's own (initial) statistics.
    features = keras.Model(b.input, b.get_layer("conv1").output)
    means = [
        keras.ops.convert_to_numpy(features(x[i : i + 16])).mean(axis=(0, 1, 2))
        for i in (0, 16)
    ]
    got = keras.ops.convert_to_numpy(probe.get_layer("bn1").moving_mean)
    np.testing.assert_allclose(got, np.mean(means, axis=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, 0.0)


def test_independently_initialized_networks_show_a_large_barrier():
    # Two networks memorizing the same random labels from different
    # initializations: each fits them, their average does not.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 16)).astype("float32")
    y = rng.integers(0, 10, size=128).astype("int32")
    models = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = _compiled(
            mlp(inputs=16, hidden=64, outputs=10), keras.optimizers.Adam(1e-2)
        )
        model.fit(np.tile(x, (200, 1)), np.tile(y, 200), batch_size=128, verbose=0)
        models.append(model)
    curve = stability.interpolation_curve(*models, {"train": (x, y)}, points=5)
    start, end = curve.endpoint_errors("train")
    assert start < 0.1 and end < 0.1
    assert curve.barrier("train") > 0.3  # measured 0.5-0.6 (TF and JAX)


# --------------------------------------------------------------------------- errors


def test_mismatched_models_and_bad_points_are_clear_errors():
    a, narrow = _compiled(mlp()), _compiled(mlp(hidden=8))
    with pytest.raises(ValueError, match="Different architectures at variable 0"):
        stability.check_compatible(a, narrow)
    b = _compiled(mlp())
    _shared_masks(a, seed=1)
    _shared_masks(b, seed=2)
    with pytest.raises(ValueError, match="masks of layer 'fc1' differ"):
        stability.interpolation_curve(a, b, {"test": classification_data()})
    _shared_masks(a, b, seed=1)
    for points, match in ((1, "points must be >= 2"), (2.5, "int >= 2")):
        with pytest.raises(ValueError, match=match):
            stability.interpolation_curve(a, b, {"test": classification_data()}, points)
    with pytest.raises(ValueError, match="Compile"):
        stability.curve_between_states(mlp(), _state(a), _state(b), {"t": (0, 0)})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(pairs=1, seeds=[(3, 3)]), "different data-order seeds"),
        (dict(pairs=1, seeds=[(3, -1)]), "seed must be an int >= 0"),
        (dict(pairs=1, seeds=[(1, 2, 3)]), "pairs"),
        (dict(pairs=1, seeds=[]), "empty"),
        (dict(pairs=0), "pairs must be an int >= 1"),
    ],
)
def test_bad_seeds_are_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stability.pair_seeds(**kwargs)


def test_default_seeds_pair_distinct_copies():
    assert stability.pair_seeds(3, first_seed=1) == [(1, 2), (3, 4), (5, 6)]
    assert stability.pair_seeds(1, seeds=[(4, 4)], allow_equal_seeds=True) == [(4, 4)]


def test_equal_seeds_and_unknown_settings_fail_before_training():
    recipe = _tiny_recipe()
    model = recipe.build_model()
    with pytest.raises(ValueError, match="different data-order seeds"):
        stability.instability(model, recipe, seeds=[(2, 2)])
    with pytest.raises(ValueError, match="Unknown stability setting"):
        stability.instability(model, recipe, pionts=3)
    with pytest.raises(ConfigError, match="stability.points"):
        stability.instability(model, recipe, points=1)
    with pytest.raises(ValueError, match="start_step must be in"):
        stability.instability(model, recipe, start_step=recipe.total_steps)


# --------------------------------------------------------------------------- copies


def test_copies_with_the_same_seed_have_zero_instability():
    recipe = _tiny_recipe()
    keras.utils.set_random_seed(0)
    start = recipe.build_model()
    masks = pruning.prune_magnitude(start, 0.5)
    before = _state(start)
    k = 3  # start mid-epoch: 7 steps per epoch
    copies = [stability.train_copy(start, recipe, s, start_step=k) for s in (5, 5, 6)]
    for before_value, after in zip(before, _state(start), strict=True):
        np.testing.assert_array_equal(before_value, after)  # start untouched
    for model, record in copies:
        assert record.steps == recipe.total_steps - k
        for layer in pruning.masked_layers(model):
            np.testing.assert_array_equal(layer.get_mask(), masks[layer.name])
            kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
            assert np.all(kernel[~masks[layer.name]] == 0)
    same, other = _state(copies[0][0]), _state(copies[1][0])
    for u, v in zip(same, other, strict=True):
        np.testing.assert_allclose(u, v, atol=1e-6)
    assert not all(
        np.allclose(u, v) for u, v in zip(same, _state(copies[2][0]), strict=True)
    )
    data = {"test": recipe.test_data, "train": recipe.train_eval_data()}
    curve = stability.interpolation_curve(copies[0][0], copies[1][0], data, points=5)
    assert curve.barrier("test") == pytest.approx(0.0, abs=1e-6)
    assert curve.barrier("train") == pytest.approx(0.0, abs=1e-6)


def test_instability_with_a_cache_resumes_without_retraining(tmp_path, monkeypatch):
    recipe = _tiny_recipe()
    keras.utils.set_random_seed(0)
    start = recipe.build_model()
    pruning.prune_magnitude(start, 0.5)
    seeds = [(1, 2), (1, 3)]  # copy 1 serves both pairs
    trained = []
    original = stability.train_copy

    def interrupted(*args, **kwargs):
        trained.append(args[2])
        if args[2] == 3:
            raise KeyboardInterrupt  # interrupted while training copy 3
        return original(*args, **kwargs)

    monkeypatch.setattr(stability, "train_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stability.instability(start, recipe, seeds=seeds, points=3, cache_dir=tmp_path)
    assert trained == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.glob("pair_*")) == ["pair_s1_s2.json"]
    mtime = (tmp_path / "pair_s1_s2.json").stat().st_mtime_ns

    def counting(*args, **kwargs):
        trained.append(args[2])
        return original(*args, **kwargs)

    trained.clear()
    monkeypatch.setattr(stability, "train_copy", counting)
    result = stability.instability(
        start, recipe, seeds=seeds, points=3, cache_dir=tmp_path
    )
    assert trained == [3]  # copies 1, 2 and pair (1, 2) come from the cache
    assert (tmp_path / "pair_s1_s2.json").stat().st_mtime_ns == mtime
    assert [p.seeds for p in result.pairs] == seeds
    assert set(result.splits) == {"test", "train"}
    stats = result.stats("test")
    assert stats["min"] <= stats["mean"] <= stats["max"]

    trained.clear()
    again = stability.instability(
        start, recipe, seeds=seeds, points=5, cache_dir=tmp_path
    )
    assert trained == [] and len(again.pairs[0].curve.alphas) == 5  # re-evaluated
    other = recipe.build_model()  # another starting state: refused
    with pytest.raises(ValueError, match="another starting state"):
        stability.instability(other, recipe, seeds=seeds, points=3, cache_dir=tmp_path)


# --------------------------------------------------------------------------- results


def test_barrier_statistics_and_round_trip():
    curve_1 = stability.InterpolationCurve(
        [0.0, 0.5, 1.0], {"test": [0.1, 0.3, 0.12], "train": [0.0, 0.01, 0.0]}
    )
    curve_2 = stability.InterpolationCurve(
        [0.0, 0.5, 1.0], {"test": [0.1, 0.14, 0.1], "train": [0.0, 0.0, 0.0]}
    )
    assert curve_1.barrier("test") == pytest.approx(0.19)
    assert curve_1.barrier("train") == pytest.approx(0.01)
    result = stability.InstabilityResult(
        pairs=[
            stability.PairResult((1, 2), curve_1),
            stability.PairResult((3, 4), curve_2),
        ],
        threshold=0.1,
        start_step=0,
    )
    stats = result.stats("test")
    assert stats["mean"] == pytest.approx(0.115)
    assert stats["std"] == pytest.approx(np.std([0.19, 0.04], ddof=1))
    assert not stats["stable"] and result.stable("train")
    assert result.mean_curve("test")["max"] == pytest.approx([0.1, 0.3, 0.12])
    again = stability.InstabilityResult.from_dict(result.to_dict())
    assert again.stats("test") == stats
    assert "instability 11.50 ± 10.61 pp" in result.summary()
    with pytest.raises(ValueError, match="No curve on 'val'"):
        curve_1.barrier("val")


def test_stability_config_section_is_typed_and_not_part_of_the_run_hash():
    plain = RunConfig()
    changed = load_config(None, ["stability.points=11", "stability.threshold=0.05"])
    assert changed.stability.points == 11 and changed.stability.threshold == 0.05
    assert changed.hashname() == plain.hashname()
    assert load_config(None, ["seed=3"]).hashname() != plain.hashname()
    for override, match in (
        ("stability.points=1", "stability.points"),
        ("stability.pairs=0", "stability.pairs"),
        ("stability.threshold=-0.1", "stability.threshold"),
        ("stability.train_eval_limit=0", "stability.train_eval_limit"),
        ("stability.pionts=3", "stability.pionts"),
    ):
        with pytest.raises(ConfigError, match=match):
            load_config(None, [override])
    assert StabilityConfig().points == 30 and StabilityConfig().threshold == 0.02
