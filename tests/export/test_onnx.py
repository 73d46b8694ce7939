"""keras_lottery.export.onnx: ONNX graphs via tf2onnx, checked with onnxruntime."""

import sys

import keras
import numpy as np
import pytest

from keras_lottery.errors import MissingExtraError
from keras_lottery.export import onnx as kl_onnx
from tests.conftest import tensorflow_only

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


@tensorflow_only
def test_onnxruntime_matches_keras_and_zeros_survive(pruned_mlp, unit_inputs, tmp_path):
    from onnx import numpy_helper

    path = tmp_path / "ticket.onnx"
    kl_onnx.export_onnx(pruned_mlp, path)
    session = kl_onnx.onnx_session(path, threads=1)
    assert [i.name for i in session.get_inputs()] == ["inputs"]
    assert [o.name for o in session.get_outputs()] == ["output_0"]
    got = kl_onnx.predict_onnx(session, unit_inputs)
    expected = pruned_mlp.predict(unit_inputs, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=kl_onnx.TOLERANCE)
    stored = [numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    for layer in pruned_mlp.layers:  # Dense kernels are stored as they are
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        assert np.all(kernel[~layer.get_mask()] == 0)
        assert sum(np.array_equal(t, kernel) for t in stored) == 1, layer.name


@tensorflow_only
def test_convnet_with_batch_norm_matches_and_keeps_its_zeros(
    pruned_convnet, rng, tmp_path
):
    from onnx import numpy_helper

    path = tmp_path / "ticket.onnx"
    kl_onnx.export_onnx(pruned_convnet, path)
    x = rng.normal(size=(3, 8, 8, 3)).astype("float32")
    got = kl_onnx.predict_onnx(kl_onnx.onnx_session(path), x)
    np.testing.assert_allclose(
        got, pruned_convnet.predict(x, verbose=0), rtol=0, atol=kl_onnx.TOLERANCE
    )
    zeros = sum(
        int((numpy_helper.to_array(t) == 0).sum())
        for t in onnx.load(str(path)).graph.initializer
    )
    pruned = sum(
        int((~pruned_convnet.get_layer(n).get_mask()).sum())
        for n in ("conv1", "conv2", "out")
    )
    assert zeros >= pruned  # transposed or BN-folded, pruned weights stay zero


def test_missing_tf2onnx_names_the_extra(pruned_mlp, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(MissingExtraError) as error:
        kl_onnx.export_onnx(pruned_mlp, tmp_path / "t.onnx")
    assert str(error.value) == (
        "tf2onnx is not installed: pip install 'keras-lottery[onnx]'"
    )
    assert list(tmp_path.iterdir()) == []
