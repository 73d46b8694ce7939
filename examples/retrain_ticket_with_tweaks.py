"""Retrain a ticket with sparse-retraining tweaks in a plain ``model.fit``.

The ticket is a ticket file (``--ticket``: one saved by ``Ticket.save``, e.g. a
run folder's ``round_NNN/ticket.npz`` or ``find_ticket_imp.py``'s) or, without
one, a mask of your own: here LeNet-300-100 at its initialization with a random
mask keeping ``--density`` of each layer's weights (ToST's "any mask"). Each arm
trains a copy of the ticket from its own weights for the same epochs: vanilla,
then every ``--tweak`` alone and all of them together. The tweaks compose through
``RetrainPlan``; KD's teacher is a dense network trained here first. Runs offline
on scikit-learn's digits, or on MNIST with ``--data``::

    python examples/retrain_ticket_with_tweaks.py --tweak swish --tweak label_smoothing
    python examples/retrain_ticket_with_tweaks.py --tweak kd \\
        --ticket runs/imp_3f/round_005/ticket.npz --data ../shared/data/mnist_subset.npz
"""

import argparse

import keras
import numpy as np

from keras_lottery import models, pruning
from keras_lottery.config import DataConfig, RetrainConfig
from keras_lottery.data import load_dataset
from keras_lottery.ticket import Ticket
from keras_lottery.tweaks.registry import names as tweak_names
from keras_lottery.tweaks.retraining import RetrainPlan


def own_mask_ticket(splits, density, seed=0) -> Ticket:
    """A ticket of your own: LeNet-300-100 at its initialization, a random
    mask keeping ``density`` of each masked layer's weights."""
    keras.utils.set_random_seed(seed)
    model = models.get(
        "lenet_300_100", num_classes=splits.num_classes, input_shape=splits.input_shape
    )
    rng = np.random.default_rng(seed)
    masks = {
        name: rng.random(mask.shape) < density
        for name, mask in pruning.get_masks(model).items()
    }
    pruning.set_masks(model, masks)
    return Ticket.from_model(model, method="own_mask", density=density)


def dense_teacher(ticket, splits, epochs, batch_size):
    """The ticket's network with every weight, trained: KD's teacher."""
    keras.utils.set_random_seed(1)
    teacher = keras.models.clone_model(ticket.build_model())
    pruning.set_masks(
        teacher, {n: np.ones_like(m) for n, m in pruning.get_masks(teacher).items()}
    )
    teacher.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    teacher.fit(
        splits.x_train, splits.y_train, epochs=epochs, batch_size=batch_size, verbose=0
    )
    return teacher


def retrain(ticket, tweaks, splits, epochs, batch_size, teacher=None, seed=0):
    """Trains ``ticket`` again with ``tweaks``; returns (test accuracy of the
    network as trained, fraction of the ticket's weights remaining after)."""
    keras.utils.set_random_seed(seed)
    model = ticket.build_model()
    model.compile(
        keras.optimizers.Adam(1.2e-3),
        keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    plan = RetrainPlan(RetrainConfig(tweaks=list(tweaks)))
    plan.check(model, has_teacher=teacher is not None)  # misfits, before training
    plan.apply_ticket(model, ticket, (splits.x_train, splits.y_train))  # LRsI
    prepared = plan.prepare(model, model.get_compile_config(), teacher)
    prepared.trainee.compile_from_config(prepared.compile_config)
    prepared.trainee.fit(
        splits.x_train,
        splits.y_train,
        epochs=epochs,
        batch_size=batch_size,
        callbacks=prepared.callbacks,
        verbose=0,
    )
    plan.finish(prepared, model)  # the ticket's layers, as trained, in `model`
    network = prepared.student  # the network as trained (soft activations...)
    network.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    _, accuracy = network.evaluate(splits.x_test, splits.y_test, verbose=0)
    return accuracy, pruning.sparsity_report(model).fraction_remaining


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help=".npz dataset (default: sklearn digits)")
    parser.add_argument("--ticket", help="a ticket file (default: a mask of your own)")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument(
        "--tweak",
        action="append",
        default=[],
        choices=tweak_names(),
        help="repeatable; the arms are each tweak alone and all of them",
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=60)
    args = parser.parse_args(argv)

    name = "digits" if args.data is None else "npz"
    splits = load_dataset(DataConfig(name=name, path=args.data, validation_size=180))
    ticket = (
        Ticket.load(args.ticket)
        if args.ticket
        else own_mask_ticket(splits, args.density)
    )
    teacher = None
    if "kd" in args.tweak:
        teacher = dense_teacher(ticket, splits, args.epochs, args.batch_size)
    arms = [[]] + [[t] for t in args.tweak]
    if len(args.tweak) > 1:
        arms.append(list(args.tweak))
    results = {}
    for tweaks in arms:
        label = "+".join(tweaks) or "vanilla"
        accuracy, remaining = retrain(
            ticket, tweaks, splits, args.epochs, args.batch_size, teacher
        )
        results[label] = {"accuracy": accuracy, "remaining": remaining}
        print(f"{label:40s} test accuracy {accuracy:.4f}  {remaining:.2%} remain")
    return results


if __name__ == "__main__":
    main()
