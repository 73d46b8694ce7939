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

from keras_lottery._io import reading
from keras_lottery.config import DataConfig
from keras_lottery.errors import DataError

ENV_VAR = "KERAS_LOTTERY_DATA"
TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10", "cifar100")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
#: Image shape (height, width, channels) and class count of the named datasets:
#: data under these names (from any file) must match them.
KNOWN = {
    "mnist": ((28, 28, 1), 10),
    "fashion_mnist": ((28, 28, 1), 10),
    "cifar10": ((32, 32, 3), 10),
    "cifar100": ((32, 32, 3), 100),
    "digits": ((8, 8, 1), 10),
}


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
    """Loads, checks, scales and splits the dataset named by ``config``.

    Raises :class:`~keras_lottery.errors.DataError`, naming the file and the
    problem, for data that would train wrongly: lengths that differ, labels
    that are not whole numbers or out of range, non-finite pixels, images
    shaped unlike ``data.name``, a validation split as large as the training set.
    """
    (x_train, y_train), (x_test, y_test) = _load_raw(config)
    source = _source(config)
    x_train, y_train = _checked(x_train, y_train, "train", source)
    x_test, y_test = _checked(x_test, y_test, "test", source)
    _check_against_name(x_train, x_test, y_train, y_test, config.name, source)
    x_train, x_test = _as_images(x_train), _as_images(x_test)
    y_train, y_test = _as_labels(y_train), _as_labels(y_test)
    n_val = config.validation_size
    if not 0 <= n_val < len(x_train):
        raise DataError(
            f"data.validation_size={n_val} must be in [0, {len(x_train)}) for "
            f"{source} ({len(x_train)} training examples): set "
            "data.validation_size smaller."
        )
    order = np.random.default_rng(config.validation_seed).permutation(len(x_train))
    val, train = order[:n_val], np.sort(order[n_val:])
    if config.train_size is not None:
        if config.train_size < 1:
            raise DataError(
                f"data.train_size must be positive; got {config.train_size}."
            )
        train = train[: config.train_size]
    return Splits(
        x_train[train], y_train[train], x_train[val], y_train[val], x_test, y_test
    )


def _source(config: DataConfig) -> str:
    """Where the data came from, for messages: the file, or the dataset name."""
    if config.path:
        return config.path
    folder = os.environ.get(ENV_VAR)
    if folder and os.path.exists(os.path.join(folder, f"{config.name}.npz")):
        return os.path.join(folder, f"{config.name}.npz")
    return f"dataset {config.name!r}"


def _checked(x, y, split: str, source: str):
    """``x`` and ``y`` of one split, checked: equal lengths, images of 3 or 4
    axes with finite values, whole-number labels >= 0 (floats like 3.0 pass,
    3.7 does not)."""
    x, y = np.asarray(x), np.asarray(y)
    where = f"{source}: x_{split}/y_{split}"
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if x.ndim not in (3, 4) or len(x) == 0:
        raise DataError(
            f"{source}: x_{split} must hold images shaped (N, H, W[, C]) with N > 0; "
            f"got shape {x.shape}."
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"{where} lengths differ: {len(x)} images but labels shaped {y.shape}; "
            "each image needs one integer label."
        )
    if not (np.issubdtype(x.dtype, np.number) and not np.iscomplexobj(x)):
        raise DataError(f"{source}: x_{split} must be numbers; got {x.dtype}.")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int(np.size(x) - np.isfinite(x).sum())
        raise DataError(f"{source}: x_{split} holds {bad} NaN or infinite value(s).")
    return x, _integer_labels(y, f"{source}: y_{split}")


def _integer_labels(y, where: str) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            first = y[~whole][0]
            raise DataError(
                f"{where} holds {int((~whole).sum())} label(s) that are not whole "
                f"numbers (e.g. {float(first):g}); labels are class indices 0, 1, 2..."
            )
    elif not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{where} must hold integer class indices; got {y.dtype}.")
    if y.min() < 0:
        raise DataError(
            f"{where} holds negative label(s) (min {int(y.min())}); labels are class "
            "indices 0, 1, 2, ..."
        )
    return y


def _check_against_name(x_train, x_test, y_train, y_test, name, source) -> None:
    shape = tuple(x_train.shape[1:]) + ((1,) if x_train.ndim == 3 else ())
    test = tuple(x_test.shape[1:]) + ((1,) if x_test.ndim == 3 else ())
    if shape != test:
        raise DataError(
            f"{source}: training images are {shape} but test images are {test}."
        )
    if name not in KNOWN:
        return
    expected, classes = KNOWN[name]
    if shape != expected:
        raise DataError(
            f"{source}: images are {shape}, but data.name={name!r} has "
            f"{expected} images. Is data.path the right file? (Use another "
            "data.name for other data.)"
        )
    top = int(max(y_train.max(), y_test.max()))
    if top >= classes:
        raise DataError(
            f"{source}: labels must be in [0, {classes}) for data.name={name!r}; "
            f"got label {top}."
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
    expected = f"a dataset .npz with the arrays {list(NPZ_KEYS)}"
    with reading(path, expected), np.load(path, allow_pickle=False) as data:
        missing = [k for k in NPZ_KEYS if k not in data.files]
        if missing:
            raise DataError(
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
