"""LRsI (GradInit) on a fresh CIFAR ResNet-20, on the CIFAR-10 subset.

Measures what :func:`keras_lottery.tweaks.lrsi.lrsi_rescale` does with ToST's
settings: GradInit's objective ``L(w - eta * g / ||g||) / eta`` before and after
(mean over fixed held-out batches of the test split, BN in batch-statistics mode
as GradInit evaluates it), the plain loss at the same weights, the number of
constraint steps, the learned scales (weights and BN gammas) and the seconds
per iteration. Optionally half the convolutions' weights are pruned first
(``--prune``), as when LRsI rescales a ticket's rewind point.

    python benchmarks/lrsi_resnet20.py --iterations 180 --batch-size 64 \\
        --json benchmarks/results/lrsi_resnet20.json

Needs ``../shared/data/cifar10_subset.npz``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery import models, pruning  # noqa: E402
from keras_lottery.tweaks.lrsi import lrsi_objective, lrsi_rescale  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data")


def load(path):
    with np.load(path) as data:
        x_train, y_train = data["x_train"], data["y_train"].ravel()
        x_test, y_test = data["x_test"], data["y_test"].ravel()
    mean = x_train.reshape(-1, 3).mean(axis=0)
    std = x_train.reshape(-1, 3).std(axis=0)
    scale = lambda x: ((x - mean) / std).astype("float32")  # noqa: E731
    return (scale(x_train), y_train.astype("int64")), (scale(x_test), y_test)


def held_out(model, x, y, batches: int, size: int) -> dict:
    objective, loss = [], []
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for i in range(batches):
        xb, yb = x[i * size : (i + 1) * size], y[i * size : (i + 1) * size]
        objective.append(lrsi_objective(model, xb, yb))
        loss.append(float(ce(yb, model(xb, training=True))))
    return {"objective": float(np.mean(objective)), "loss": float(np.mean(loss))}


class _Summary(logging.Handler):
    def __init__(self):
        super().__init__()
        self.args = None

    def emit(self, record):
        self.args = record.args


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=180)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prune", type=float, default=0.0)
    parser.add_argument("--eval-batches", type=int, default=4)
    parser.add_argument("--data", default=os.path.join(DATA, "cifar10_subset.npz"))
    parser.add_argument("--json")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = load(args.data)
    model = models.get("cifar_resnet_20", classifier_activation=None)
    if args.prune:
        pruning.prune_magnitude(
            model, args.prune, layers=models.pruning_scope(model, "convs")
        )
    before = held_out(model, x_test, y_test, args.eval_batches, 128)
    summary = _Summary()
    logging.getLogger("keras_lottery.tweaks.lrsi").addHandler(summary)
    logging.getLogger("keras_lottery.tweaks.lrsi").setLevel(logging.INFO)
    start = time.perf_counter()
    scales = lrsi_rescale(
        model,
        (x_train, y_train),
        iterations=args.iterations,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    after = held_out(model, x_test, y_test, args.eval_batches, 128)
    weights = np.array([v for k, v in scales.items() if k.endswith("/kernel")])
    gammas = np.array([v for k, v in scales.items() if k.endswith("/gamma")])
    result = {
        "backend": keras.backend.backend(),
        "settings": vars(args),
        "before": before,
        "after": after,
        "constraint_steps": int(summary.args[1]) if summary.args else None,
        "seconds": seconds,
        "seconds_per_iteration": seconds / args.iterations,
        "kernel_scales": _stats(weights),
        "gamma_scales": _stats(gammas),
        "scales": scales,
        "load_average": os.getloadavg(),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "scales"}, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=1)
    return result


def _stats(values) -> dict:
    return {
        "n": int(values.size),
        "min": float(values.min()),
        "median": float(np.median(values)),
        "max": float(values.max()),
    }


if __name__ == "__main__":
    main()
