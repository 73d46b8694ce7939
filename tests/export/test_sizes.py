"""keras_lottery.export.sizes: what a ticket costs to store."""

import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.export import save_sparse, size_report
from tests.helpers import mlp


@pytest.mark.backend_neutral
def test_each_column_means_one_thing_at_90_percent(tmp_path):
    model = mlp(inputs=200, hidden=200, outputs=10)
    dense = size_report(model)
    pruning.prune_magnitude(model, 0.9)
    report = size_report(model)
    kernels = [layer.get_mask() for layer in model.layers]
    biases = 200 + 200 + 10
    assert (
        report.dense_bytes
        == dense.dense_bytes
        == 4 * sum(int(np.prod(v.shape)) for v in model.weights if v.dtype != "bool")
    )
    kept = sum(int(m.sum()) for m in kernels)
    bits = sum((m.size + 7) // 8 for m in kernels)
    assert report.sparse_bytes == 4 * kept + bits + 4 * biases
    save_sparse(model, tmp_path / "t.npz")
    assert report.sparse_file_bytes == (tmp_path / "t.npz").stat().st_size
    assert report.sparse_ratio <= 0.2 and report.sparse_file_ratio <= 0.2
    assert dense.sparse_ratio > 1.0  # a dense model pays for the bitmask
    assert "sparse-npz file" in str(report) and "compressed" not in str(report)
    assert set(report.to_dict()) == {
        "dense_bytes",
        "sparse_bytes",
        "sparse_file_bytes",
        "sparse_ratio",
        "sparse_file_ratio",
    }
