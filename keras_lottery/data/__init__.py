"""Data for runs: datasets (``.npz``, scikit-learn's digits, tensorflow-datasets)
and seeded ``tf.data`` pipelines.

``pipelines`` is imported on first use, so loading arrays works without
TensorFlow (the JAX and PyTorch backends); the pipelines themselves need it.

Example:

>>> splits = load_dataset(DataConfig(name="mnist", path="mnist_subset.npz"))
>>> train = pipelines.train_dataset(splits.x_train, splits.y_train, 128, seed=0)
"""

from keras_lottery.data.datasets import (
    ENV_VAR,
    NPZ_KEYS,
    TFDS_NAMES,
    Splits,
    load_dataset,
)

__all__ = ["ENV_VAR", "NPZ_KEYS", "TFDS_NAMES", "Splits", "load_dataset", "pipelines"]


def __getattr__(name):
    if name == "pipelines":
        import importlib

        return importlib.import_module("keras_lottery.data.pipelines")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
