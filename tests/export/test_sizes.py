"""keras_lottery.export.sizes: what a ticket costs to store."""

import keras
import numpy as np
import pytest

from keras_lottery import pruning
from keras_lottery.export import size_report, sparse_arrays
from tests.helpers import mlp


@pytest.mark.backend_neutral
def test_size_report_at_90_percent_sparsity():
    model = mlp(inputs=200, hidden=200, outputs=10)
    dense = size_report(model)
    pruning.prune_magnitude(model, 0.9)
    report = size_report(model)
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
def test_sparse_arrays_decode_to_the_masked_kernel(pruned_convnet):
    model = pruned_convnet
    arrays = sparse_arrays(model)
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
