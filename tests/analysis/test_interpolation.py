"""Linear interpolation between two networks (keras_lottery.analysis.interpolation):
the path, batch-norm statistics, curves and barriers, and the errors."""

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.analysis import interpolation
from keras_lottery.rewind import capture_state
from tests.helpers import classification_data, mlp, small_convnet

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


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


# --------------------------------------------------------------------------- path


def test_alphas_are_evenly_spaced_with_both_endpoints():
    np.testing.assert_array_equal(interpolation.alphas(2), [0.0, 1.0])
    np.testing.assert_array_equal(interpolation.alphas(5), [0, 0.25, 0.5, 0.75, 1])


def test_interpolate_states_mixes_floats_and_keeps_the_other_arrays():
    a = [np.array([1.0, 2.0], "float32"), np.array([True, False])]
    b = [np.array([3.0, -2.0], "float32"), np.array([False, False])]
    mixed = interpolation.interpolate_states(a, b, 0.25)
    np.testing.assert_array_equal(mixed[0], np.array([1.5, 1.0], "float32"))
    assert mixed[0].dtype == np.float32
    np.testing.assert_array_equal(mixed[1], [True, False])  # taken from a
    assert mixed[1] is not a[1]


def test_interpolation_reproduces_the_endpoints_exactly():
    x, y = classification_data()
    a, b = _compiled(mlp()), _compiled(mlp())
    _shared_masks(a, b)
    state_a, state_b = _state(a), _state(b)
    assert not all(np.array_equal(u, v) for u, v in zip(state_a, state_b, strict=True))

    curve = interpolation.interpolation_curve(a, b, {"test": (x, y)}, points=3)
    acc_a = a.evaluate(x, y, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    acc_b = b.evaluate(x, y, batch_size=500, verbose=0, return_dict=True)["accuracy"]
    assert curve.alphas == [0.0, 0.5, 1.0]
    assert curve.errors["test"][0] == pytest.approx(1.0 - acc_a, abs=1e-7)
    assert curve.errors["test"][-1] == pytest.approx(1.0 - acc_b, abs=1e-7)
    for before, after in zip(state_a, _state(a), strict=True):  # a is given back
        np.testing.assert_array_equal(before, after)

    probe = _compiled(mlp())
    for alpha, expected in ((0.0, state_a), (1.0, state_b)):
        interpolation.write_interpolation(probe, state_a, state_b, alpha)
        for got, want in zip(_state(probe), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    interpolation.write_interpolation(probe, state_a, state_b, 0.25)
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
    index = interpolation._mask_index(probe)
    mask_index = {i: layer.name for i, layer in index.items()}
    for state in (state_a, state_b):
        for i, name in mask_index.items():
            state[i] = masks[name]
    for alpha in (0.0, 0.3, 0.5, 1.0):
        interpolation.write_interpolation(probe, state_a, state_b, alpha)
        for layer in pruning.masked_layers(probe):
            kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
            mask = masks[layer.name]
            assert np.all(kernel[~mask] == 0)
            assert np.count_nonzero(kernel[mask]) == mask.sum()
            np.testing.assert_array_equal(layer.get_mask(), mask)


# --------------------------------------------------------------------------- batch norm


def test_batch_norm_statistics_are_interpolated():
    a, b, probe = small_convnet(), small_convnet(), small_convnet()
    assert [layer.name for layer in interpolation.batch_norm_layers(probe)] == ["bn1"]
    rng = np.random.default_rng(0)
    for model in (a, b):
        bn = model.get_layer("bn1")
        bn.moving_mean.assign(rng.normal(size=4).astype("float32"))
        bn.moving_variance.assign(rng.uniform(0.5, 2, size=4).astype("float32"))
    state_a, state_b = _state(a), _state(b)
    interpolation.write_interpolation(probe, state_a, state_b, 0.25)
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
    used = interpolation.reestimate_batch_norm(
        model, (x, None), batches=3, batch_size=10
    )
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


def test_batch_norm_reestimation_without_batch_norm_or_data():
    assert interpolation.reestimate_batch_norm(mlp(), (np.zeros((4, 8)), None), 2) == 0
    with pytest.raises(ValueError, match="batches must be an int >= 1"):
        interpolation.reestimate_batch_norm(small_convnet(), (None, None), 0)
    with pytest.raises(ValueError, match="got no data"):
        interpolation.reestimate_batch_norm(small_convnet(), [], 2)


def test_curve_with_batch_norm_reestimation_at_every_point():
    a, b = small_convnet(), small_convnet()
    probe = _compiled(small_convnet())
    rng = np.random.default_rng(2)
    x = rng.normal(1.0, 2.0, size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 3, size=32).astype("int32")
    state_a, state_b = _state(a), _state(b)
    with pytest.raises(ValueError, match="bn_data"):
        interpolation.curve_between_states(
            probe, state_a, state_b, {"t": (x, y)}, 3, bn_batches=2
        )
    curve = interpolation.curve_between_states(
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


# --------------------------------------------------------------------------- curves


@pytest.mark.core_covered
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
    curve = interpolation.interpolation_curve(*models, {"train": (x, y)}, points=5)
    start, end = curve.endpoint_errors("train")
    assert start < 0.1 and end < 0.1
    assert curve.barrier("train") > 0.3  # measured 0.5-0.6 (TF and JAX)


def test_curve_barrier_endpoints_and_round_trip():
    curve = interpolation.InterpolationCurve(
        [0.0, 0.5, 1.0],
        {"test": [0.1, 0.3, 0.12], "train": [0.0, 0.01, 0.0]},
        {"test": [1.0, 2.0, 1.5]},
    )
    assert curve.barrier("test") == pytest.approx(0.3 - 0.11)
    assert curve.barrier("train") == pytest.approx(0.01)
    assert curve.endpoint_errors("test") == (0.1, 0.12)
    # No point above the endpoints: the highest point is an endpoint, so the
    # barrier is half the difference of the endpoints' errors.
    dip = interpolation.InterpolationCurve([0.0, 0.5, 1.0], {"t": [0.2, 0.0, 0.1]})
    assert dip.barrier("t") == pytest.approx(0.2 - 0.15)
    assert interpolation.InterpolationCurve.from_dict(curve.to_dict()) == curve
    with pytest.raises(ValueError, match="No curve on 'val'"):
        curve.barrier("val")


# --------------------------------------------------------------------------- errors


def test_mismatched_models_and_bad_points_are_clear_errors():
    a, narrow = _compiled(mlp()), _compiled(mlp(hidden=8))
    with pytest.raises(ValueError, match="Different architectures at variable 0"):
        interpolation.check_compatible(a, narrow)
    b = _compiled(mlp())
    _shared_masks(a, seed=1)
    _shared_masks(b, seed=2)
    with pytest.raises(ValueError, match="masks of layer 'fc1' differ"):
        interpolation.interpolation_curve(a, b, {"test": classification_data()})
    _shared_masks(a, b, seed=1)
    for points, match in ((1, "points must be >= 2"), (2.5, "int >= 2")):
        with pytest.raises(ValueError, match=match):
            interpolation.interpolation_curve(
                a, b, {"test": classification_data()}, points
            )
    with pytest.raises(ValueError, match="Compile"):
        interpolation.curve_between_states(mlp(), _state(a), _state(b), {"t": (0, 0)})
    with pytest.raises(ValueError, match="at least one data split"):
        interpolation.curve_between_states(_compiled(mlp()), _state(a), _state(b), {})
