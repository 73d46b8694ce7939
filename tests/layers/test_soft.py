"""The soft-mask layers of Continuous Sparsification (keras_lottery.layers.soft):
the penalty they add, training, saving, argument checks."""

import math

import keras
import numpy as np
import pytest

from keras_lottery.layers import (
    SoftMaskedConv2D,
    SoftMaskedDense,
    SoftMaskedDepthwiseConv2D,
)
from keras_lottery.soft_masks import soft_layers
from tests.helpers import images, soft_convnet, to_numpy

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def test_penalty_is_lambda_times_sum_of_soft_masks():
    soft = soft_convnet(penalty=0.01)
    rng = np.random.default_rng(1)
    for layer in soft_layers(soft):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
        layer.set_temperature(3.0)
    x, _ = images(4)
    soft(x)
    expected = sum(
        0.01 * np.sum(1 / (1 + np.exp(-3.0 * to_numpy(layer.mask_logits))) / 0.5)
        for layer in soft_layers(soft)
    )
    assert float(sum(to_numpy(loss) for loss in soft.losses)) == pytest.approx(
        expected, rel=1e-5
    )


def test_training_step_moves_logits_and_weights():
    soft = soft_convnet(penalty=1e-2)
    x, y = images(16)
    before = {v.path: to_numpy(v).copy() for v in soft.trainable_variables}
    soft.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for layer in soft_layers(soft):
        for variable in (layer.mask_logits, layer.raw_kernel):
            assert not np.allclose(to_numpy(variable), before[variable.path])
        assert not layer.temperature.trainable and not layer.penalty.trainable


def test_soft_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((6, 6, 4))
    x = SoftMaskedDepthwiseConv2D(3, padding="same", mask_initial_value=-0.1)(inputs)
    x = SoftMaskedConv2D(5, 3, mask_penalty=0.5)(x)
    outputs = SoftMaskedDense(2)(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    for layer in soft_layers(model):
        layer.mask_logits.assign(rng.normal(size=layer.mask_logits.shape))
        layer.set_temperature(7.0)
    model.save(tmp_path / "soft.keras")
    loaded = keras.models.load_model(tmp_path / "soft.keras")
    for a, b in zip(model.weights, loaded.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
    assert soft_layers(loaded)[0].mask_initial_value == -0.1
    assert soft_layers(loaded)[1].mask_penalty == 0.5


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="mask_penalty must be >= 0"):
        SoftMaskedDense(3, mask_penalty=-1.0)
    with pytest.raises(ValueError, match="mask_initial_value must be a finite"):
        SoftMaskedDense(3, mask_initial_value=math.inf)
    layer = SoftMaskedDense(3)
    layer.build((None, 2))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        layer.set_temperature(0.0)
