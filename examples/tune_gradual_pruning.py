"""Tune pruning inside ``fit`` with Keras Tuner: final sparsity and schedule as
hyperparameters, your own model builder, the best pruned models back from
``tuner.get_best_models``. Runs offline on scikit-learn's digits::

    python examples/tune_gradual_pruning.py --sparsities 0.5 0.8 0.9 --epochs 5
"""

import argparse

import keras
import keras_tuner

import keras_lottery as kl
from keras_lottery.layers import MaskedDense
from keras_lottery.runs.tuning import GradualPruningHyperModel


def build(hp, inputs=64, classes=10):
    """A user's own model builder: masked layers, compiled; ``hp`` may tune it."""
    model = keras.Sequential(
        [
            keras.Input((inputs,)),
            MaskedDense(64, activation="relu", name="fc1"),
            MaskedDense(classes, name="out"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.8])
    parser.add_argument("--schedules", nargs="+", default=["polynomial"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, help="use only this many examples")
    parser.add_argument("--tuner-dir", default="tuning")
    args = parser.parse_args(argv)

    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = (x / 16.0).astype("float32")[: args.limit], y[: args.limit]
    steps = -(-int(0.8 * len(x)) // 32) * args.epochs  # optimizer steps in all
    hypermodel = GradualPruningHyperModel(
        build,
        sparsities=args.sparsities,
        schedules=args.schedules,
        end_step=max(1, steps // 2),
        frequency=max(1, steps // 10),
    )
    tuner = keras_tuner.GridSearch(
        hypermodel,
        objective="val_accuracy",
        directory=args.tuner_dir,
        project_name="gradual",
        overwrite=True,
    )
    tuner.search(
        x, y, validation_split=0.2, epochs=args.epochs, batch_size=32, verbose=0
    )
    trials = len(args.sparsities) * len(args.schedules)
    models = tuner.get_best_models(trials)
    best = tuner.oracle.get_best_trials(trials)
    for trial, model in zip(best, models, strict=True):
        hp = trial.hyperparameters
        print(
            f"sparsity {hp.get('final_sparsity'):.2f} ({hp.get('schedule')}): "
            f"val_accuracy {trial.score:.3f}, "
            f"{kl.pruning.sparsity_report(model).fraction_remaining:.1%} weights left"
        )
    return tuner, models


if __name__ == "__main__":
    main()
