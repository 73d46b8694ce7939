"""keras_lottery.soft_masks: the state of a soft-masked model (hard masks from
the logits, the logit reset between rounds, rewinding, the temperature)."""

import numpy as np
import pytest

from keras_lottery import soft_masks
from keras_lottery.rewind import capture_state
from keras_lottery.soft_masks import binarize, reset_logits, soft_layers
from tests.helpers import images, small_convnet, soft_convnet, to_numpy

pytestmark = [pytest.mark.backend_neutral, pytest.mark.backend_core]


# --------------------------------------------------------------------------- masks


def test_binarize_threshold_and_exact_target():
    soft = soft_convnet()
    conv1, conv2 = soft_layers(soft)
    logits1 = np.linspace(-1, 1, 108).reshape(conv1.mask_logits.shape)
    conv1.mask_logits.assign(logits1)
    conv2.mask_logits.assign(np.full(conv2.mask_logits.shape, 0.5))
    masks = binarize(soft)
    assert masks["conv1"].sum() == np.sum(logits1 > 0) == 54  # 108 evenly from -1
    assert masks["conv2"].all()
    assert soft_masks.remaining_fraction(soft) == pytest.approx((54 + 216) / 324)
    total = 108 + 216
    exact = binarize(soft, target_sparsity=0.5)
    kept = sum(int(m.sum()) for m in exact.values())
    assert kept == round(0.5 * total) == 162
    # conv1's 27 logits above 0.5 come first; the 216 ties at 0.5 (conv2) fill
    # the remaining 135 places by position.
    assert exact["conv1"].sum() == 27 and exact["conv1"].ravel()[-27:].all()
    assert exact["conv2"].ravel()[:135].all() and not exact["conv2"].ravel()[135:].any()
    with pytest.raises(ValueError, match=r"target_sparsity must be in \[0, 1\)"):
        binarize(soft, target_sparsity=1.0)
    with pytest.raises(ValueError, match="no soft-mask layer"):
        binarize(small_convnet())


def test_reset_rule_paper_and_code():
    soft = soft_convnet(s0=-0.1)
    layer = soft_layers(soft)[0]
    logits = np.zeros(layer.mask_logits.shape, "float32")
    logits.flat[:3] = [0.5, -0.02, -0.5]
    layer.mask_logits.assign(logits)
    layer.set_temperature(10.0)
    reset_logits(soft, "paper")
    np.testing.assert_allclose(to_numpy(layer.mask_logits).flat[:3], [-0.1, -0.2, -5.0])
    layer.mask_logits.assign(logits)
    reset_logits(soft, "code")
    np.testing.assert_allclose(to_numpy(layer.mask_logits).flat[:3], [-0.1, -0.1, -0.5])
    with pytest.raises(ValueError, match="rule must be one of"):
        reset_logits(soft, "both")
    assert soft_masks.LOGIT_RESETS == ("paper", "code")


def test_rewind_weights_keeps_logits_temperature_and_penalty():
    soft = soft_convnet(penalty=1e-2)
    state = capture_state(soft)
    x, y = images(16)
    soft.fit(x, y, batch_size=8, epochs=1, verbose=0)
    soft_masks.set_temperature(soft, 5.0)
    kept = {
        v.path: to_numpy(v).copy()
        for layer in soft_layers(soft)
        for v in (layer.mask_logits, layer.temperature, layer.penalty)
    }
    soft_masks.rewind_weights(soft, state)
    for variable, value in zip(soft.weights, state, strict=True):
        if variable.path in kept:
            np.testing.assert_array_equal(to_numpy(variable), kept[variable.path])
        else:
            np.testing.assert_array_equal(to_numpy(variable), value)
    assert all(float(to_numpy(lyr.temperature)) == 5.0 for lyr in soft_layers(soft))
    logits = soft_layers(soft)[0].mask_logits.path
    before = dict(zip([v.path for v in soft.weights], state, strict=True))
    assert not np.array_equal(kept[logits], before[logits])  # they did train
