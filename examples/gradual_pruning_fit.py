"""Prune a Keras model to 80% sparsity inside one ``model.fit``.

Zhu & Gupta's polynomial schedule (as in tfmot) drives GradualPruning; densities
go to TensorBoard next to the usual metrics; the pruned model round-trips
through ``.keras`` and is stripped to plain Keras layers for export. Runs on
scikit-learn's digits (offline) or any MNIST-shaped ``.npz`` with ``--data``::

    python examples/gradual_pruning_fit.py --epochs 10 --out gradual_out
    tensorboard --logdir gradual_out/logs
"""

import argparse
import os

import keras
import numpy as np

import keras_lottery as kl
from keras_lottery.gradual import GradualPruning, PruningSummaries
from keras_lottery.pruning_schedules import PolynomialDecay


def load_data(path=None, limit=None):
    """(x, y) flattened to [0, 1] floats: ``path`` (x_train/y_train) or digits."""
    if path:
        with np.load(path) as data:
            x, y = data["x_train"], data["y_train"]
    else:
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        x = x / 16.0
    x = x.reshape(len(x), -1).astype("float32")
    x = x / max(1.0, float(x.max()))
    return x[:limit], y[:limit].astype("int32")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an .npz with x_train, y_train")
    parser.add_argument("--limit", type=int, help="use only this many examples")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--hidden", type=int, nargs=2, default=[300, 100])
    parser.add_argument("--out", default="gradual_out")
    args = parser.parse_args(argv)

    x, y = load_data(args.data, args.limit)
    keras.utils.set_random_seed(0)
    model = kl.models.get(
        "lenet_300_100",
        num_classes=int(y.max()) + 1,
        input_shape=x.shape[1:],
        hidden=tuple(args.hidden),
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    steps_per_epoch = int(np.ceil(0.9 * len(x) / args.batch_size))
    # From the start to the target in 8 prune steps over all but the last
    # epoch, which fine-tunes the final mask.
    frequency = max(1, steps_per_epoch * max(1, args.epochs - 1) // 8)
    schedule = PolynomialDecay(
        0.0, args.sparsity, begin_step=0, end_step=8 * frequency, frequency=frequency
    )
    logs = os.path.join(args.out, "logs")
    pruning = GradualPruning(schedule, verbose=1)
    model.fit(
        x,
        y,
        validation_split=0.1,
        epochs=args.epochs,
        batch_size=args.batch_size,
        verbose=2,
        callbacks=[
            pruning,
            PruningSummaries(pruning, logs),
            keras.callbacks.TensorBoard(logs),
        ],
    )
    report = kl.pruning.sparsity_report(model)
    print(report)

    path = os.path.join(args.out, "pruned.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x[:32], verbose=0),
        model.predict(x[:32], verbose=0),
        rtol=1e-5,
        atol=1e-6,
    )

    plain = kl.strip_masks(loaded)  # plain Dense layers, zeros baked in
    plain.save(os.path.join(args.out, "plain.keras"))
    return report, pruning, plain


if __name__ == "__main__":
    main()
