"""keras_lottery.export.keras_format: .keras files of plain layers."""

import keras
import numpy as np
import pytest

from keras_lottery.errors import ConfigError
from keras_lottery.export import export_keras


@pytest.mark.backend_neutral
def test_loads_as_plain_keras_with_equal_outputs(pruned_convnet, tmp_path, rng):
    path = tmp_path / "ticket.keras"
    export_keras(pruned_convnet, path)
    loaded = keras.saving.load_model(path)  # no keras_lottery custom objects
    assert type(loaded.get_layer("conv2")) is keras.layers.Conv2D
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), pruned_convnet.predict(x, verbose=0), atol=1e-6
    )
    with pytest.raises(ConfigError, match=r"must end in \.keras"):
        export_keras(pruned_convnet, tmp_path / "ticket.h5")
