import keras
import numpy as np
import pytest

from keras_lottery.optimizers import CoupledAdam, CoupledSGD

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


def _torch_sgd(w, grads, lr, momentum, wd, nesterov=False):
    """PyTorch's SGD update rule, written out in numpy."""
    buf = None
    for g in grads:
        d = g + wd * w
        buf = d if buf is None else momentum * buf + d
        w = w - lr * (d + momentum * buf if nesterov else buf)
    return w


@pytest.mark.parametrize("nesterov", [False, True])
def test_coupled_sgd_matches_pytorch_weight_decay(nesterov):
    w0 = np.array([1.0, -2.0, 0.5, 0.0], "float32")
    grads = [np.array([0.1, 0.2, -0.3, 0.0], "float32")] * 3
    variable = keras.Variable(w0, name="kernel")
    opt = CoupledSGD(0.1, momentum=0.9, nesterov=nesterov, coupled_weight_decay=0.01)
    for g in grads:
        opt.apply([keras.ops.convert_to_tensor(g)], [variable])
    expected = _torch_sgd(w0, grads, 0.1, 0.9, 0.01, nesterov)
    np.testing.assert_allclose(np.asarray(variable), expected, rtol=1e-6, atol=1e-7)
    # Keras's own (decoupled) weight decay would land elsewhere: the test can fail.
    keras_sgd = keras.optimizers.SGD(
        0.1, momentum=0.9, nesterov=nesterov, weight_decay=0.01
    )
    other = keras.Variable(w0, name="kernel")
    for g in grads:
        keras_sgd.apply([keras.ops.convert_to_tensor(g)], [other])
    assert not np.allclose(np.asarray(other), expected, rtol=1e-6, atol=1e-7)


def test_excluded_variables_get_no_decay_and_zero_stays_zero():
    kernel = keras.Variable(np.ones(3, "float32"), name="kernel")
    logits = keras.Variable(np.ones(3, "float32"), name="mask_logits")
    opt = CoupledSGD(0.5, coupled_weight_decay=0.1, exclude=["mask_logits"])
    zero = keras.ops.zeros(3)
    opt.apply([zero, zero], [kernel, logits])
    np.testing.assert_allclose(np.asarray(kernel), 1 - 0.5 * 0.1)
    np.testing.assert_allclose(np.asarray(logits), 1.0)


def test_coupled_adam_is_adam_on_the_l2_gradient():
    w0 = np.array([1.0, -2.0], "float32")
    g = np.array([0.3, -0.1], "float32")
    a = keras.Variable(w0, name="kernel")
    b = keras.Variable(w0, name="kernel")
    CoupledAdam(0.01, coupled_weight_decay=0.1).apply([keras.ops.array(g)], [a])
    keras.optimizers.Adam(0.01).apply([keras.ops.array(g + 0.1 * w0)], [b])
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_config_round_trip_keeps_decay_and_exclusions():
    opt = CoupledSGD(0.1, momentum=0.9, coupled_weight_decay=1e-4, exclude=["mask"])
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, CoupledSGD)
    assert again.coupled_weight_decay == 1e-4 and again.exclude == ["mask"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="coupled_weight_decay must be a number >= 0"):
        CoupledSGD(0.1, coupled_weight_decay=-1)
    with pytest.raises(ValueError, match="do not also pass"):
        CoupledSGD(0.1, coupled_weight_decay=1e-4, weight_decay=1e-4)
