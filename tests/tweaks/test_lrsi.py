import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.errors import ConfigError, DataError
from keras_lottery.layers import MaskedConv2D, MaskedDense
from keras_lottery.tweaks.lrsi import lrsi_objective, lrsi_rescale


def _net():
    """Masked conv (half pruned), BN, masked dense: every kind of scaled tensor
    (kernels, BN gamma; biases and beta start at zero and are left out)."""
    inputs = keras.Input((4, 4, 1))
    x = MaskedConv2D(2, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    outputs = MaskedDense(2, name="out")(x)
    model = keras.Model(inputs, outputs)
    pruning.prune_magnitude(model, 0.5)
    return model


def _batch(n=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 4, 4, 1)).astype("float32"), rng.integers(0, 2, n)


def _values(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


def test_scales_lower_the_objective_and_leave_masks_alone():
    model = _net()
    x, y = _batch()
    before = _values(model)
    objective = lrsi_objective(model, x, y)

    scales = lrsi_rescale(model, [(x, y)], iterations=15, learning_rate=0.05)

    assert sorted(scales) == ["bn/gamma", "conv/kernel", "out/kernel"]
    assert lrsi_objective(model, x, y) < objective
    after = _values(model)
    for path, value in before.items():
        if path in scales:
            np.testing.assert_allclose(after[path], value * scales[path], rtol=1e-6)
        else:  # masks, zero biases, BN moving statistics
            np.testing.assert_array_equal(after[path], value)
    for layer in pruning.masked_layers(model):
        raw = np.asarray(keras.ops.convert_to_numpy(layer.raw_kernel))
        assert np.all(raw[~layer.get_mask()] == 0)


# The one LRsI test on JAX too (its gradients are jax.grad's): compiling the
# step functions costs seconds there, so it runs two iterations. On torch LRsI
# is refused clearly.
@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_scales_respect_their_minimum():
    model = _net()
    x, y = _batch()
    before = _values(model)
    if keras.backend.backend() == "torch":
        with pytest.raises(ConfigError, match="torch"):
            lrsi_rescale(model, (x, y), iterations=2, batch_size=8)
        return

    scales = lrsi_rescale(model, (x, y), iterations=2, batch_size=8, min_scale=2.0)

    assert sorted(scales) == ["bn/gamma", "conv/kernel", "out/kernel"]
    assert min(scales.values()) >= 2.0
    after = _values(model)
    for path, value in before.items():
        expected = value * scales[path] if path in scales else value
        np.testing.assert_allclose(after[path], expected, rtol=1e-6)


def test_bias_scales_stop_at_their_own_minimum():
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, bias_initializer="ones")(inputs))
    x, y = np.ones((8, 3), "float32"), np.zeros(8, "int64")

    scales = lrsi_rescale(
        model, [(x, y)], iterations=3, min_scale=1.5, bias_min_scale=0.5
    )

    bias = next(path for path in scales if path.endswith("bias"))
    assert scales[bias] >= 0.5 and min(scales.values()) >= 0.5
    assert all(value >= 1.5 for path, value in scales.items() if path != bias)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(iterations=0), "iterations must be >= 1"),
        (dict(eta=-0.1), "eta must be a finite number > 0"),
        (dict(bias_min_scale=float("nan")), "bias_min_scale must be a finite"),
    ],
)
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        lrsi_rescale(_net(), _batch(), **options)


def test_bad_data_is_refused():
    with pytest.raises(DataError, match="no batches"):
        lrsi_rescale(_net(), [], iterations=1)
    x, y = _batch()
    with pytest.raises(DataError, match="16 inputs and 3 labels"):
        lrsi_rescale(_net(), [(x, y[:3])], iterations=1)
