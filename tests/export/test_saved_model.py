"""keras_lottery.export.saved_model: SavedModels of masked models."""

import os

import keras
import numpy as np
import pytest

from keras_lottery.export import export_saved_model
from tests.conftest import tensorflow_only


@tensorflow_only
def test_saved_model_serving_output_matches_predict(pruned_convnet, tmp_path, rng):
    import tensorflow as tf

    model = pruned_convnet
    path = str(tmp_path / "ticket")
    export_saved_model(model, path)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]
    served = tf.saved_model.load(path)
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5
    )
    with pytest.raises(FileExistsError):
        export_saved_model(model, path)


@tensorflow_only
def test_failed_export_leaves_no_partial_folder(pruned_convnet, tmp_path, monkeypatch):
    model = pruned_convnet

    def broken_export(self, *args, **kwargs):
        os.makedirs(args[0])
        raise RuntimeError("disk full")

    monkeypatch.setattr(keras.Model, "export", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(model, str(tmp_path / "ticket"))
    assert os.listdir(tmp_path) == []
