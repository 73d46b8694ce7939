"""keras_lottery.export.sparse_npz: bitmask + nonzeros files and load_sparse."""

import json

import keras
import numpy as np
import pytest

from keras_lottery.errors import CorruptFileError, OutputExistsError
from keras_lottery.export import load_sparse, save_sparse, sparse_arrays, strip_masks
from keras_lottery.export.sparse_npz import METADATA_KEY


@pytest.mark.backend_neutral
def test_round_trips_bit_for_bit_and_rebuilds_the_model(pruned_convnet, tmp_path, rng):
    model = pruned_convnet
    stale = rng.normal(size=model.get_layer("conv2").get_mask().shape)
    model.get_layer("conv2").raw_kernel.assign(stale.astype("float32"))
    path = tmp_path / "ticket.sparse.npz"
    save_sparse(model, path, method="imp", round=3)
    ticket = load_sparse(path)
    baked = [keras.ops.convert_to_numpy(v) for v in strip_masks(model).weights]
    assert len(ticket.weights) == len(baked)
    for got, want in zip(ticket.weights, baked, strict=True):
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes()  # bit for bit, -0.0 included
    for layer in ("conv1", "conv2", "out"):
        np.testing.assert_array_equal(
            ticket.masks[layer], model.get_layer(layer).get_mask()
        )
    assert ticket.metadata["method"] == "imp" and ticket.metadata["round"] == 3
    rebuilt = ticket.build_model()
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(
        rebuilt.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    with pytest.raises(OutputExistsError):
        save_sparse(model, path)


@pytest.mark.backend_neutral
def test_documented_layout_decodes_with_numpy_alone(pruned_convnet, tmp_path):
    model = pruned_convnet
    save_sparse(model, tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz") as data:
        header = json.loads(bytes(data[METADATA_KEY]).decode("utf-8"))
        (conv2,) = [info for info in header["layers"] if info["name"] == "conv2"]
        shape, key = tuple(conv2["shape"]), conv2["kernel"]
        n = int(np.prod(shape))
        kernel = np.zeros(n, dtype="float32")
        kernel[np.unpackbits(data[f"{key}:bits"])[:n].astype(bool)] = data[
            f"{key}:values"
        ]
        assert "bn1/gamma" in data.files  # other variables stay dense
    assert header["format"] == "keras_lottery.sparse_npz"
    np.testing.assert_array_equal(
        kernel.reshape(shape),
        keras.ops.convert_to_numpy(model.get_layer("conv2").kernel),
    )
    kept = int(model.get_layer("conv2").get_mask().sum())
    assert sparse_arrays(model)[f"{key}:values"].size == kept


def test_a_file_of_another_kind_is_a_corrupt_file_error(tmp_path):
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(CorruptFileError, match="sparse-npz file"):
        load_sparse(tmp_path / "other.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(CorruptFileError, match="text.npz"):
        load_sparse(tmp_path / "text.npz")
