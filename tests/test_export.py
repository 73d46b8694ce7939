import os

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import export, pruning
from tests.conftest import tensorflow_only
from tests.helpers import mlp, small_convnet


def _pruned_convnet(fraction=0.7):
    model = small_convnet()
    model.predict(np.zeros((1, 8, 8, 3)), verbose=0)
    pruning.prune_magnitude(model, fraction)
    return model


@pytest.mark.backend_neutral
def test_strip_masks_gives_plain_layers_and_equal_outputs(rng):
    model = _pruned_convnet()
    plain = export.strip_masks(model)
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
def test_strip_masks_bakes_the_mask_even_over_stale_stored_values(rng):
    model = _pruned_convnet()
    layer = model.get_layer("conv2")
    mask = layer.get_mask()
    stale = rng.normal(size=mask.shape).astype("float32")
    layer.raw_kernel.assign(stale)  # bypasses set_mask: pruned entries non-zero
    kernel = keras.ops.convert_to_numpy(
        export.strip_masks(model).get_layer("conv2").kernel
    )
    np.testing.assert_array_equal(kernel, stale * mask)


@tensorflow_only
def test_saved_model_serving_output_matches_predict(tmp_path, rng):
    import tensorflow as tf

    model = _pruned_convnet()
    path = str(tmp_path / "ticket")
    export.export_saved_model(model, path)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".export-")]
    served = tf.saved_model.load(path)
    x = rng.normal(size=(5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(
        served.serve(x).numpy(), model.predict(x, verbose=0), atol=1e-5
    )
    with pytest.raises(FileExistsError):
        export.export_saved_model(model, path)


@tensorflow_only
def test_failed_export_leaves_no_partial_folder(tmp_path, monkeypatch):
    model = _pruned_convnet()

    def broken_export(self, *args, **kwargs):
        os.makedirs(args[0])
        raise RuntimeError("disk full")

    monkeypatch.setattr(keras.Model, "export", broken_export)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_saved_model(model, str(tmp_path / "ticket"))
    assert os.listdir(tmp_path) == []


@pytest.mark.backend_neutral
def test_size_report_at_90_percent_sparsity():
    model = mlp(inputs=200, hidden=200, outputs=10)
    dense = export.size_report(model)
    pruning.prune_magnitude(model, 0.9)
    report = export.size_report(model)
    assert (
        report.dense_bytes
        == dense.dense_bytes
        == 4 * sum(int(np.prod(v.shape)) for v in model.weights if v.dtype != "bool")
    )
    assert report.sparse_ratio <= 0.2
    assert report.compressed_ratio <= 0.2
    assert dense.sparse_ratio > 1.0  # a dense model pays for the bitmask
    assert "compressed" in str(report)


@pytest.mark.backend_neutral
def test_sparse_arrays_decode_to_the_masked_kernel():
    model = _pruned_convnet()
    arrays = export.sparse_arrays(model)
    layer = model.get_layer("conv2")
    shape = tuple(arrays["conv2/kernel:shape"])
    bits = np.unpackbits(arrays["conv2/kernel:bits"])[: int(np.prod(shape))].astype(
        bool
    )
    kernel = np.zeros(np.prod(shape), dtype="float32")
    kernel[bits] = arrays["conv2/kernel:values"]
    np.testing.assert_array_equal(
        kernel.reshape(shape), keras.ops.convert_to_numpy(layer.kernel)
    )
