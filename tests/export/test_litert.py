"""keras_lottery.export.litert: LiteRT flatbuffers, float32, sparse, quantized."""

import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.errors import ConfigError, OutputExistsError
from keras_lottery.export import litert
from tests.conftest import tensorflow_only
from tests.helpers import mlp


def export_and_compare(model, x, folder, cases) -> dict:
    """Exports ``model`` for each ``(sparse, quantize)`` of ``cases``, checks the
    interpreter's outputs on ``x`` against Keras's; returns the file sizes."""
    expected = model.predict(x, verbose=0)
    sizes = {}
    for sparse, quantize in cases:
        path = folder / f"{sparse}_{quantize}.tflite"
        litert.export_litert(model, path, sparse=sparse, quantize=quantize)
        sizes[sparse, quantize] = path.stat().st_size
        interpreter = litert.load_interpreter(path)
        got = litert.predict_litert(interpreter, x)
        assert got.shape == expected.shape
        tolerance = litert.TOLERANCES[quantize]
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)
        if quantize is None:
            # float32 kernels: the arithmetic is the same up to summation order
            assert np.abs(got - expected).max() < 1e-5
    return sizes


@tensorflow_only
def test_float32_sparse_and_dynamic_range_match_keras(
    pruned_mlp, unit_inputs, tmp_path
):
    cases = [(False, None), (True, None), (False, "dynamic")]
    sizes = export_and_compare(pruned_mlp, unit_inputs, tmp_path, cases)
    dense = sizes[False, None]
    assert sizes[True, None] < 0.3 * dense  # 90% of the kernels not stored
    assert sizes[False, "dynamic"] < 0.4 * dense  # int8 weights
    interpreter = litert.load_interpreter(tmp_path / "False_None.tflite")
    assert interpreter.get_signature_list() == {
        "serving_default": {"inputs": ["inputs"], "outputs": ["output_0"]}
    }


@pytest.mark.slow
@tensorflow_only
def test_float16_and_sparse_dynamic_range_match_keras(
    pruned_mlp, unit_inputs, tmp_path
):
    cases = [(False, None), (False, "float16"), (True, "dynamic")]
    sizes = export_and_compare(pruned_mlp, unit_inputs, tmp_path, cases)
    assert sizes[False, "float16"] < 0.6 * sizes[False, None]
    # XNNPACK cannot prepare sparse + int8 fully-connected kernels: the
    # interpreter fell back to the built-in kernels and still matched.


@pytest.mark.slow
@tensorflow_only
def test_sparse_file_is_at_most_a_fifth_of_dense_at_90_percent(tmp_path):
    model = mlp(inputs=200, hidden=200, outputs=10)
    pruning.prune_magnitude(model, 0.9)
    litert.export_litert(model, tmp_path / "dense.tflite")
    litert.export_litert(model, tmp_path / "sparse.tflite", sparse=True)
    ratio = (tmp_path / "sparse.tflite").stat().st_size / (
        tmp_path / "dense.tflite"
    ).stat().st_size
    assert ratio <= 0.2


def test_bad_quantize_and_existing_output_are_refused(pruned_mlp, tmp_path):
    with pytest.raises(ConfigError, match="quantize must be one of dynamic, float16"):
        litert.export_litert(pruned_mlp, tmp_path / "t.tflite", quantize="int4")
    (tmp_path / "t.tflite").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        litert.export_litert(pruned_mlp, tmp_path / "t.tflite")
    assert (tmp_path / "t.tflite").read_bytes() == b"old"


@tensorflow_only
def test_uses_ai_edge_litert_where_installed_else_tf_lite(monkeypatch):
    import sys

    import tensorflow as tf

    pytest.importorskip("ai_edge_litert.interpreter")
    assert litert.interpreter_class().__module__.startswith("ai_edge_litert")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert litert.interpreter_class() is tf.lite.Interpreter


def test_no_interpreter_at_all_names_the_litert_extra(monkeypatch):
    import sys

    from keras_lottery.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # a TF without tf.lite
    with pytest.raises(MissingExtraError, match=r"keras-lottery\[litert\]"):
        litert.interpreter_class()
