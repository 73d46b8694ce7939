"""keras_lottery.export.plain: masked models as plain Keras models."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.export import strip_masks


@pytest.mark.backend_neutral
def test_strip_masks_gives_plain_layers_and_equal_outputs(pruned_convnet, rng):
    model = pruned_convnet
    plain = strip_masks(model)
    assert not any(kl.layers.is_masked(lyr) for lyr in plain.layers)
    assert type(plain.get_layer("conv1")) is keras.layers.Conv2D
    assert type(plain.get_layer("out")) is keras.layers.Dense
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        plain.predict(x, verbose=0), model.predict(x, verbose=0), rtol=0, atol=1e-6
    )
    kernel = keras.ops.convert_to_numpy(plain.get_layer("conv1").kernel)
    mask = model.get_layer("conv1").get_mask()
    assert np.all(kernel[~mask] == 0)


@pytest.mark.backend_neutral
def test_strip_masks_bakes_the_mask_even_over_stale_stored_values(pruned_convnet, rng):
    model = pruned_convnet
    layer = model.get_layer("conv2")
    mask = layer.get_mask()
    stale = rng.normal(size=mask.shape).astype("float32")
    layer.raw_kernel.assign(stale)  # bypasses set_mask: pruned entries non-zero
    kernel = keras.ops.convert_to_numpy(strip_masks(model).get_layer("conv2").kernel)
    np.testing.assert_array_equal(kernel, stale * mask)
