"""keras_lottery.export.dispatch: export() of Tickets and models, any format."""

import os

import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.errors import ConfigError, OutputExistsError
from keras_lottery.export import litert
from keras_lottery.ticket import Ticket
from tests.conftest import tensorflow_only


@tensorflow_only
def test_exports_a_ticket_with_its_weights_and_reports_sizes(
    pruned_mlp, unit_inputs, tmp_path
):
    ticket = Ticket.from_model(pruned_mlp, method="imp", round=2)
    result = kl.export.export(
        ticket, tmp_path / "t.tflite", format="litert", sparse=True
    )
    got = litert.predict_litert(litert.load_interpreter(result.path), unit_inputs)
    np.testing.assert_allclose(
        got, pruned_mlp.predict(unit_inputs, verbose=0), rtol=0, atol=1e-5
    )
    assert result.file_bytes == os.path.getsize(tmp_path / "t.tflite")
    assert result.sparsity == pytest.approx(0.9, abs=0.01)
    assert result.sizes.dense_bytes == 4 * (2 * 64 * 64 + 64 * 10 + 64 + 64 + 10)
    data = result.to_dict()
    assert data["options"] == {"sparse": True, "quantize": None}
    assert data["file_ratio"] == pytest.approx(result.file_bytes / data["dense_bytes"])
    assert "litert (sparse=True)" in str(result)


def test_bad_format_options_and_existing_outputs(pruned_mlp, tmp_path):
    with pytest.raises(ConfigError, match="choose one of saved_model, keras, litert"):
        kl.export.export(pruned_mlp, tmp_path / "t", format="tfjs")
    with pytest.raises(ConfigError, match="litert format only, not onnx"):
        kl.export.export(pruned_mlp, tmp_path / "t.onnx", format="onnx", sparse=True)
    (tmp_path / "t.npz").write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        kl.export.export(pruned_mlp, tmp_path / "t.npz", format="sparse-npz")
    result = kl.export.export(
        pruned_mlp, tmp_path / "t.npz", format="sparse-npz", overwrite=True
    )
    assert kl.export.load_sparse(result.path).sparsity == pytest.approx(0.9, abs=0.01)


@tensorflow_only
def test_failed_conversion_leaves_nothing_and_keeps_the_old_file(
    pruned_mlp, tmp_path, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(litert, "litert_bytes", broken)
    (tmp_path / "t.tflite").write_bytes(b"old")
    with pytest.raises(RuntimeError, match="converter crashed"):
        kl.export.export(
            pruned_mlp, tmp_path / "t.tflite", format="litert", overwrite=True
        )
    assert os.listdir(tmp_path) == ["t.tflite"]
    assert (tmp_path / "t.tflite").read_bytes() == b"old"
