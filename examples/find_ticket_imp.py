"""Find a winning ticket with IMP and rewinding, then ship it.

LeNet-300-100, layerwise magnitude pruning (20% per round, output layer 10%),
rewinding to iteration 100 (--rewind), the random-reinitialization control every round.
Runs offline on scikit-learn's bundled digits by default; point --data at an
.npz with x_train/y_train/x_test/y_test (e.g. ../shared/data/mnist_subset.npz)
for real MNIST.

    python examples/find_ticket_imp.py --rounds 5 --epochs 10
    python examples/find_ticket_imp.py --data ../shared/data/mnist_subset.npz
"""

import argparse
import os

import keras

from keras_lottery import IterativeMagnitudePruning, export, models
from keras_lottery.config import DataConfig
from keras_lottery.data import load_dataset


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help=".npz dataset (default: sklearn digits)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rewind", default="100it", help="0, '100it', '2ep'...")
    parser.add_argument("--out", default="example_out")
    args = parser.parse_args(argv)

    name = "digits" if args.data is None else "npz"
    splits = load_dataset(DataConfig(name=name, path=args.data, validation_size=180))
    keras.utils.set_random_seed(0)
    model = models.get(
        "lenet_300_100", num_classes=splits.num_classes, input_shape=splits.input_shape
    )
    model.compile(
        keras.optimizers.Adam(1.2e-3),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    imp = IterativeMagnitudePruning(
        fraction=0.2,
        rounds=args.rounds,
        scope="layerwise",
        layer_fractions={"output": 0.1},
        rewind=args.rewind,
        baselines=["random_reinit"],
        verbose=0,
    )
    result = imp.run(
        model,
        splits.x_train,
        splits.y_train,
        epochs=args.epochs,
        batch_size=60,
        validation_data=(splits.x_val, splits.y_val),
        test_data=(splits.x_test, splits.y_test),
        verbose=0,
    )
    print(result.table())

    os.makedirs(args.out, exist_ok=True)
    result.ticket.save(os.path.join(args.out, "lenet.ticket.npz"))
    print(export.size_report(model))  # the final round's trained, pruned network
    export.export_saved_model(
        model, os.path.join(args.out, "lenet_saved_model"), overwrite=True
    )
    return result


if __name__ == "__main__":
    main()
