import time

import numpy as np
import pytest

from keras_lottery.config import DataConfig
from keras_lottery.data import load_dataset
from tests.conftest import shared_data_path


def _write_npz(path, n_train=50, n_test=20, shape=(6, 6)):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        y_train=rng.integers(0, 10, n_train),
        x_test=rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        y_test=rng.integers(0, 10, n_test),
    )


def test_npz_is_scaled_split_and_deterministic(tmp_path):
    _write_npz(tmp_path / "d.npz")
    config = DataConfig(
        name="anything", path=str(tmp_path / "d.npz"), validation_size=10
    )
    a, b = load_dataset(config), load_dataset(config)
    assert a.x_train.shape == (40, 6, 6, 1) and a.x_val.shape == (10, 6, 6, 1)
    assert a.x_test.shape == (20, 6, 6, 1) and a.input_shape == (6, 6, 1)
    assert (
        a.x_train.dtype == np.float32 and 0 <= a.x_train.min() and a.x_train.max() <= 1
    )
    assert a.y_train.dtype == np.int32
    np.testing.assert_array_equal(a.x_val, b.x_val)
    other = load_dataset(
        DataConfig(
            name="x",
            path=str(tmp_path / "d.npz"),
            validation_size=10,
            validation_seed=1,
        )
    )
    assert not np.array_equal(a.x_val, other.x_val)
    assert (
        len(
            load_dataset(
                DataConfig(
                    name="x",
                    path=str(tmp_path / "d.npz"),
                    validation_size=10,
                    train_size=7,
                )
            ).x_train
        )
        == 7
    )


def test_environment_folder_lookup(tmp_path, monkeypatch):
    _write_npz(tmp_path / "mnist.npz", shape=(28, 28))  # named mnist: MNIST-shaped
    monkeypatch.setenv("KERAS_LOTTERY_DATA", str(tmp_path))
    assert len(load_dataset(DataConfig(name="mnist", validation_size=5)).x_train) == 45


def test_digits_are_bundled_and_offline():
    splits = load_dataset(DataConfig(name="digits", validation_size=180))
    assert splits.x_train.shape == (1257, 8, 8, 1) and len(splits.x_test) == 360
    assert splits.num_classes == 10


def test_missing_dataset_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_LOTTERY_DATA", raising=False)
    began = time.perf_counter()
    with pytest.raises((FileNotFoundError, RuntimeError), match="KERAS_LOTTERY_DATA"):
        load_dataset(DataConfig(name="cifar100"))
    assert time.perf_counter() - began < 30


@pytest.mark.parametrize(
    "config,match",
    [
        (DataConfig(name="imagenet"), "Unknown dataset"),
        (DataConfig(name="x", path="/nonexistent.npz"), "does not exist"),
    ],
)
def test_bad_dataset_names(config, match):
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        load_dataset(config)


def test_validation_size_too_large(tmp_path):
    _write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match="validation_size"):
        load_dataset(
            DataConfig(name="x", path=str(tmp_path / "d.npz"), validation_size=60)
        )


def test_real_mnist_subset():
    path = shared_data_path("mnist_subset.npz")
    splits = load_dataset(DataConfig(name="mnist", path=path, validation_size=1000))
    assert (
        splits.x_train.shape == (16435, 28, 28, 1) and splits.x_test.shape[0] == 10000
    )


def test_mnist_config_pointed_at_the_cifar_file_is_refused():
    from keras_lottery.errors import DataError

    path = shared_data_path("cifar10_subset.npz")
    with pytest.raises(DataError) as error:
        load_dataset(DataConfig(name="mnist", path=path, validation_size=10))
    assert str(error.value) == (
        f"{path}: images are (32, 32, 3), but data.name='mnist' has (28, 28, 1) "
        "images. Is data.path the right file? (Use another data.name for other data.)"
    )
