"""keras_lottery.guards: non-finite losses and weights stop training with a
DivergenceError naming the phase and the epoch."""

import math

import keras
import numpy as np
import pytest

from keras_lottery import guards
from keras_lottery.errors import DivergenceError, LotteryError
from keras_lottery.training import train_from_step


def _model(classes=3):
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(classes, activation="softmax")]
    )
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _data(n=32, nan=False):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4)).astype("float32")
    if nan:
        x[5, 2] = np.nan
    return x, rng.integers(0, 3, n)


@pytest.mark.backend_neutral
def test_nonfinite_value_names_the_loss_or_the_variable():
    model = _model()
    assert guards.nonfinite_value(model, {"loss": 1.5, "val_loss": 2.0}) is None
    assert guards.nonfinite_value(model, {"loss": float("nan")}) == "the loss (nan)"
    assert (
        guards.nonfinite_value(model, {"val_loss": float("inf")})
        == "the val loss (inf)"
    )
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    assert guards.nonfinite_value(model) == f"the weights ({kernel.path})"


@pytest.mark.backend_neutral
def test_check_finite_raises_a_lottery_error_naming_phase_and_epoch():
    with pytest.raises(DivergenceError) as caught:
        guards.check_finite(_model(), "IMP round 2 (ticket)", 3, {"loss": math.nan})
    assert isinstance(caught.value, (LotteryError, RuntimeError))
    assert str(caught.value).startswith(
        "Training diverged in IMP round 2 (ticket) at epoch 3: the loss (nan) is "
        "not finite. Nothing was saved for this phase; lower the learning rate"
    )


@pytest.mark.backend_neutral
def test_training_on_nan_stops_at_the_first_epoch_with_the_phase():
    model = _model()
    x, y = _data(nan=True)
    with pytest.raises(DivergenceError, match=r"in branch X at epoch 1: the loss"):
        train_from_step(
            model,
            0,
            compile_config=model.get_compile_config(),
            x=x,
            y=y,
            epochs=3,
            batch_size=8,
            verbose=0,
            phase="branch X",
        )


@pytest.mark.backend_neutral
def test_uniform_guess_loss_is_ln_classes_for_cross_entropy_only():
    assert guards.uniform_guess_loss(_model(10)) == pytest.approx(math.log(10))
    model = _model()
    model.compile("sgd", "mse")
    assert guards.uniform_guess_loss(model) is None


@pytest.mark.backend_neutral
def test_a_finite_but_exploded_run_is_warned_about_not_stopped(capsys):
    # Adam at lr 1e8: weights ~1e8, loss finite and far above ln(3).
    model = _model()
    model.compile(keras.optimizers.Adam(1e8), "sparse_categorical_crossentropy")
    x, y = _data()
    model.fit(
        x, y, epochs=2, verbose=0, callbacks=[guards.StopOnDivergence("adam run")]
    )
    out = capsys.readouterr().out
    assert "[keras_lottery] warning: adam run ended with training loss" in out
    assert "above 1.099 = ln(classes), the loss of a uniform guess" in out
