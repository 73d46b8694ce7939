"""Data for runs: datasets (``.npz``, scikit-learn's digits, tensorflow-datasets)
and seeded ``tf.data`` pipelines.

Example:

>>> splits = load_dataset(DataConfig(name="mnist", path="mnist_subset.npz"))
>>> train = pipelines.train_dataset(splits.x_train, splits.y_train, 128, seed=0)
"""

from keras_lottery.data import pipelines
from keras_lottery.data.datasets import (
    ENV_VAR,
    NPZ_KEYS,
    TFDS_NAMES,
    Splits,
    load_dataset,
)

__all__ = ["ENV_VAR", "NPZ_KEYS", "TFDS_NAMES", "Splits", "load_dataset", "pipelines"]
