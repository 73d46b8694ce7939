import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.errors import ConfigError
from keras_lottery.tweaks.distill import Distiller, kd_loss
from tests.helpers import classification_data, mlp, to_numpy


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.backend_neutral
def test_kd_loss_equals_a_hand_computed_value_on_fixed_logits():
    student = np.array([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]], "float32")
    teacher = np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]], "float32")
    labels = np.array([0, 2])
    T, alpha = 5.0, 0.9
    p_t, p_s = _softmax(teacher / T), _softmax(student / T)
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1).mean()
    ce = -np.log(_softmax(student)[[0, 1], labels]).mean()
    expected = alpha * T**2 * kl + (1 - alpha) * ce
    got = kd_loss(labels, student, teacher, T, alpha, from_logits=True)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    # Probabilities read as log-probabilities give the same loss (softmax is
    # shift-invariant).
    probs = kd_loss(labels, _softmax(student), _softmax(teacher), T, alpha)
    np.testing.assert_allclose(float(probs), expected, rtol=1e-4)


def test_settings_are_checked_naming_the_key():
    with pytest.raises(ConfigError, match="'temperature' must be a number > 0"):
        kd_loss([0], [[0.5, 0.5]], [[0.5, 0.5]], temperature=0)
    with pytest.raises(ConfigError, match=r"'alpha' must be a number in \[0, 1\]"):
        Distiller(mlp(), mlp(), alpha=1.5)


def _softmax_mlp():
    model = mlp(outputs=3)
    return keras.Sequential([model, keras.layers.Softmax()])


@pytest.mark.backend_core
@pytest.mark.backend_neutral
def test_masked_student_trains_with_fit_against_a_frozen_teacher():
    x, y = classification_data(n=64)
    teacher = _softmax_mlp()  # untrained: only its outputs matter here
    teacher_before = [to_numpy(w).copy() for w in teacher.weights]
    student = _softmax_mlp()
    pruning.prune_magnitude(student, 0.5)
    masks = {k: v.copy() for k, v in pruning.get_masks(student).items()}
    distiller = Distiller(student, teacher)
    distiller.compile(
        keras.optimizers.Adam(0.01),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = distiller.fit(x, y, epochs=3, batch_size=32, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    pruning.sync_state(distiller)
    for before, after in zip(teacher_before, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, to_numpy(after))
    for name, mask in pruning.get_masks(student).items():
        np.testing.assert_array_equal(mask, masks[name])
        layer = student.get_layer(index=0).get_layer(name)
        assert np.all(to_numpy(layer.kernel)[~mask.astype(bool)] == 0)
    # Evaluation reports the student's plain loss (no teacher term).
    plain = keras.losses.sparse_categorical_crossentropy(y, student.predict(x, 0))
    result = distiller.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(
        result["loss"], float(np.mean(to_numpy(plain))), rtol=1e-4
    )
