"""Continuous Sparsification on a CIFAR ResNet, then the same ticket retrained.

Builds a registry ResNet, soft-masks its 3x3 convolutions, runs the search
(rounds of --epochs epochs, beta 1 -> 200 per round, rewinding to epoch 1) and
trains the hard-masked ticket. Prints the sparsity, accuracy and the epochs
spent. Defaults are CPU-sized; the authors' are 3 x 85 epochs on full CIFAR-10.

    python examples/continuous_sparsification.py \
        --data ../shared/data/cifar10_subset.npz
"""

import argparse

import keras

from keras_lottery import ContinuousSparsification, CoupledSGD, models, soften
from keras_lottery.config import DataConfig
from keras_lottery.data import load_dataset
from keras_lottery.soft_masks import LOGITS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with CIFAR-shaped images")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12, help="epochs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--s0", type=float, default=0.0, help="mask initial value")
    parser.add_argument("--validation-size", type=int, default=500)
    args = parser.parse_args(argv)

    splits = load_dataset(
        DataConfig(name="npz", path=args.data, validation_size=args.validation_size)
    )
    keras.utils.set_random_seed(0)
    model = models.get(
        "cifar_resnet",
        num_classes=splits.num_classes,
        input_shape=splits.input_shape,
        depth=args.depth,
        width=args.width,
        bn_init="ones",
    )
    soft = soften(model, models.pruning_scope(model, "cs"), mask_initial_value=args.s0)
    soft.compile(
        CoupledSGD(
            0.1,
            momentum=0.9,
            nesterov=True,
            coupled_weight_decay=1e-4,
            exclude=[LOGITS],
        ),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # No controls (the default trains random_reinit and random_prune too).
    search = ContinuousSparsification(rounds=args.rounds, rewind="1ep", baselines=[])
    result = search.run(
        soft,
        splits.x_train,
        splits.y_train,
        epochs=args.epochs,
        batch_size=128,
        validation_data=(splits.x_val, splits.y_val),
        test_data=(splits.x_test, splits.y_test),
        verbose=0,
    )
    meta = result.ticket.metadata
    print(
        f"ticket: {100 * (1 - meta['sparsity']):.2f}% of weights remain, test "
        f"accuracy {result.ticket_training.test['accuracy']:.4f}, "
        f"{result.epochs['total']} epochs in all"
    )
    return result


if __name__ == "__main__":
    main()
