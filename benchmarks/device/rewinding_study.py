"""One IMP run of the ResNet-20 rewinding study on the JAX backend, without TensorFlow.

The device machine (one GPU, JAX, no TensorFlow) cannot run the ``tf.data``
pipelines, so this script feeds the library's IMP driver through a NumPy
:class:`keras.utils.PyDataset` that applies the same augmentation as
``data.augment: cifar`` (zero-pad 4, random 32x32 crop, random horizontal flip,
then per-channel normalization with the training split's statistics). Everything
else (config, model, masks, rewinding, run folder, report) is the library's, through
:func:`keras_lottery.runs.runner.run`. The data order and augmentation draws differ
from the TensorFlow pipeline's (NumPy's generator instead of TF's stateless ops), so
runs here are not bit-comparable with CPU runs; they are statistically equivalent.

Example (one seed, k = 1 epoch; ``benchmarks/device/rewinding_study.sh`` runs the
whole grid):

    KERAS_BACKEND=jax python benchmarks/device/rewinding_study.py \
        --data ../shared/data/cifar10_subset.npz --seed 0 --rewind 1ep --out runs
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np

from keras_lottery.config import load_config
from keras_lottery.data.datasets import load_dataset
from keras_lottery.methods import registry
from keras_lottery.recipes import Recipe
from keras_lottery.runs import runner

CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "resnet20_cifar10_subset.yaml"
)


class AugmentedBatches(keras.utils.PyDataset):
    """Shuffled, CIFAR-augmented, normalized batches; epoch ``e`` of the
    sequence is a pure function of ``(seed, e)``."""

    def __init__(self, x, y, batch_size, mean, std, seed, padding=4):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size, self.padding, self.seed = batch_size, padding, seed
        self.mean = mean.reshape(1, 1, 1, -1).astype(np.float32)
        self.std = std.reshape(1, 1, 1, -1).astype(np.float32)
        self.epoch = 0
        self._draw_epoch()

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def _draw_epoch(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        n, p = len(self.x), self.padding
        self.order = rng.permutation(n)
        self.offsets = rng.integers(0, 2 * p + 1, size=(n, 2))
        self.flips = rng.random(n) < 0.5

    def on_epoch_end(self):
        self.epoch += 1
        self._draw_epoch()

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        p = self.padding
        images = np.pad(self.x[rows], ((0, 0), (p, p), (p, p), (0, 0)))
        h, w = self.x.shape[1:3]
        top, left = self.offsets[rows, 0], self.offsets[rows, 1]
        r = top[:, None] + np.arange(h)[None, :]
        c = left[:, None] + np.arange(w)[None, :]
        images = images[
            np.arange(len(rows))[:, None, None], r[:, :, None], c[:, None, :]
        ]
        flips = self.flips[rows]
        images[flips] = images[flips, :, ::-1]
        return (images - self.mean) / self.std, self.y[rows]


class NumpyRecipe(Recipe):
    """The config's recipe with NumPy data feeding instead of ``tf.data``."""

    def fit_kwargs(self, order_seed=None, verbose=0):
        seed = self.default_order_seed() if order_seed is None else order_seed
        batches = AugmentedBatches(
            self.splits.x_train,
            self.splits.y_train,
            self.batch_size,
            self.mean,
            self.std,
            seed,
        )
        kwargs = {"x": batches, "epochs": self.epochs, "verbose": verbose}
        if len(self.splits.x_val):
            kwargs["validation_data"] = self._eval_data(
                self.splits.x_val, self.splits.y_val
            )
        return kwargs

    def _eval_data(self, x, y, batch_size=256):
        mean = self.mean.reshape(1, 1, 1, -1)
        std = self.std.reshape(1, 1, 1, -1)
        return ((x - mean) / std).astype(np.float32), y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="cifar10_subset.npz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rewind", default="1ep", help="pruning.rewind")
    parser.add_argument("--out", required=True, help="folder of run folders")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--set", action="append", default=[], help="override")
    args = parser.parse_args(argv)
    config = load_config(
        args.config,
        [
            f"data.path={os.path.abspath(args.data)}",
            f"seed={args.seed}",
            f"pruning.rewind={args.rewind}",
            *args.set,
        ],
    )
    if config.data.augment != "cifar" or not config.data.normalize:
        raise SystemExit("This script implements data.augment=cifar, normalize=true.")
    recipe = NumpyRecipe(config, splits=load_dataset(config.data))
    keras.utils.set_random_seed(config.seed)
    model = registry.get(config.method).prepare(config, recipe, recipe.build_model())
    began = time.perf_counter()
    directory = runner.run(config, out=args.out, prepared=(recipe, model))
    print(f"[study] {directory} finished in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
