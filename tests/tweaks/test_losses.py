import keras
import numpy as np
import pytest

from keras_lottery.errors import ConfigError
from keras_lottery.tweaks.losses import (
    SmoothedSparseCategoricalCrossentropy,
    keras_label_smoothing,
    smoothed_targets,
)


@pytest.mark.backend_neutral
def test_smoothed_targets_put_alpha_over_c_minus_1_and_sum_to_one():
    targets = keras.ops.convert_to_numpy(smoothed_targets([2, 0], 5, alpha=0.1))
    np.testing.assert_allclose(targets.sum(axis=1), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(targets[0], [0.025, 0.025, 0.9, 0.025, 0.025])
    np.testing.assert_allclose(targets[1, 0], 0.9)
    column = keras.ops.convert_to_numpy(smoothed_targets([[1]], 3, alpha=0.1))
    np.testing.assert_allclose(column, [[0.05, 0.9, 0.05]], rtol=1e-6)


def test_keras_label_smoothing_is_alpha_c_over_c_minus_1():
    assert keras_label_smoothing(0.1, 10) == pytest.approx(0.1111111)
    assert keras_label_smoothing(0.1, 2) == pytest.approx(0.2)


@pytest.mark.backend_neutral
def test_smoothed_loss_equals_keras_categorical_with_converted_smoothing():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=6).astype("float32")
    labels = np.array([0, 1, 2, 3, 1, 0])
    ours = SmoothedSparseCategoricalCrossentropy(alpha=0.1)(labels, probs)
    keras_loss = keras.losses.CategoricalCrossentropy(
        label_smoothing=keras_label_smoothing(0.1, 4)
    )(np.eye(4, dtype="float32")[labels], probs)
    np.testing.assert_allclose(float(ours), float(keras_loss), rtol=1e-5)
    logits = np.log(probs)
    from_logits = SmoothedSparseCategoricalCrossentropy(0.1, from_logits=True)
    np.testing.assert_allclose(
        float(from_logits(labels, logits)), float(ours), rtol=1e-5
    )


def test_smoothed_loss_round_trips_its_config_and_rejects_bad_alpha():
    loss = SmoothedSparseCategoricalCrossentropy(alpha=0.2)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, SmoothedSparseCategoricalCrossentropy)
    assert again.alpha == 0.2
    with pytest.raises(ConfigError, match=r"'alpha' must be a number in \[0, 1\)"):
        SmoothedSparseCategoricalCrossentropy(alpha=1.0)
