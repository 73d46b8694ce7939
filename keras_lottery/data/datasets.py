"""Datasets for runs: local ``.npz`` files, scikit-learn's digits, or
tensorflow-datasets when the data is already prepared (or downloading is allowed).

Lookup order for ``name``: ``config.path``; ``$KERAS_LOTTERY_DATA/<name>.npz``;
``digits`` (bundled with scikit-learn, offline); tensorflow-datasets. A dataset
that is nowhere to be found gives one clear error at once instead of minutes of
download retries.

Example:

>>> config = DataConfig(name="mnist", path="../shared/data/mnist_subset.npz")
>>> splits = load_dataset(config)
>>> splits.x_train.shape, splits.x_val.shape, splits.x_test.shape
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from keras_lottery.config import DataConfig

ENV_VAR = "KERAS_LOTTERY_DATA"
TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Splits:
    """Train / validation / test arrays: images float32 in [0, 1] with a channel
    axis, labels int32."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def load_dataset(config: DataConfig) -> Splits:
    """Loads, scales and splits the dataset named by ``config``."""
    (x_train, y_train), (x_test, y_test) = _load_raw(config)
    x_train, x_test = _as_images(x_train), _as_images(x_test)
    y_train, y_test = _as_labels(y_train), _as_labels(y_test)
    n_val = config.validation_size
    if not 0 <= n_val < len(x_train):
        raise ValueError(
            f"data.validation_size={n_val} must be in [0, {len(x_train)}) for "
            f"{config.name} ({len(x_train)} training examples)."
        )
    order = np.random.default_rng(config.validation_seed).permutation(len(x_train))
    val, train = order[:n_val], np.sort(order[n_val:])
    if config.train_size is not None:
        if config.train_size < 1:
            raise ValueError(
                f"data.train_size must be positive; got {config.train_size}."
            )
        train = train[: config.train_size]
    return Splits(
        x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test
    )


def _load_raw(config: DataConfig):
    if config.path:
        return _load_npz(config.path)
    folder = os.environ.get(ENV_VAR)
    if folder and os.path.exists(os.path.join(folder, f"{config.name}.npz")):
        return _load_npz(os.path.join(folder, f"{config.name}.npz"))
    if config.name == "digits":
        return _load_digits()
    if config.name in TFDS_NAMES:
        return _load_tfds(config)
    raise ValueError(
        f"Unknown dataset {config.name!r}. Use one of {list(TFDS_NAMES) + ['digits']}, "
        f"or point data.path (or ${ENV_VAR}) at a .npz with keys {list(NPZ_KEYS)}."
    )


def _load_npz(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"Dataset file {path} does not exist.")
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in NPZ_KEYS if k not in data.files]
        if missing:
            raise ValueError(
                f"{path} lacks the key(s) {missing}; a dataset .npz needs "
                f"{list(NPZ_KEYS)}."
            )
        return (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).astype("float32")  # 0..16 -> 0..255
    order = np.random.default_rng(0).permutation(len(images))
    test, train = order[:360], order[360:]
    return (images[train], digits.target[train]), (images[test], digits.target[test])


def _load_tfds(config: DataConfig):
    hint = (
        f"Put {config.name}.npz (keys {list(NPZ_KEYS)}) in ${ENV_VAR} or set "
        "data.path; or set data.download: true on a machine with internet."
    )
    try:
        import tensorflow_datasets as tfds

        builder = tfds.builder(config.name)
        prepared = os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))
    except Exception as error:  # tfds missing pieces (e.g. importlib_resources)
        raise RuntimeError(
            f"Dataset {config.name!r} is not available locally and "
            f"tensorflow-datasets cannot be used ({error}). {hint}"
        ) from error
    if not prepared and not config.download:
        raise FileNotFoundError(
            f"Dataset {config.name!r} is not prepared in {builder.data_dir}. {hint}"
        )
    train, test = tfds.as_numpy(
        tfds.load(
            config.name,
            split=["train", "test"],
            batch_size=-1,
            as_supervised=True,
            download=config.download,
        )
    )
    return train, test


def _as_images(x) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"Expected images shaped (N, H, W[, C]); got {x.shape}.")
    x = x.astype("float32")
    return x / 255.0 if x.max() > 1.0 else x


def _as_labels(y) -> np.ndarray:
    return np.asarray(y).reshape(-1).astype("int32")


def channel_stats(images, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``images`` (on the scale the
    pipelines use: uint8 divided by 255), computed in float64 in chunks."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"Expected images shaped (N, H, W, C); got {images.shape}.")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    channels = images.shape[-1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].astype(np.float64) / scale
        total += block.sum(axis=(0, 1, 2))
        squares += np.square(block).sum(axis=(0, 1, 2))
    count = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)
