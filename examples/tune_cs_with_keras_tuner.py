"""A family of Continuous Sparsification tickets as Keras Tuner trials.

Every trial searches one s0 from the same starting network; the tuner ranks the
tickets by validation accuracy and each ticket lies in its run folder.

    python examples/tune_cs_with_keras_tuner.py configs/cs_resnet20_cifar10.yaml \\
        --set data.path=../shared/data/cifar10_subset.npz --set training.duration=4ep \\
        --s0 -0.1 0.0 0.1

The same command, with ``--out`` and ``--tuner-dir`` on a shared file system, runs
as a chief and workers on many machines in Keras Tuner's distributed mode
(``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP``, ``KERASTUNER_ORACLE_PORT``;
docs/distributed.md): the chief prints the family, the workers run the trials.
"""

import argparse

from keras_lottery.config import load_config
from keras_lottery.runs.tuner_sweep import tuner_role
from keras_lottery.runs.tuning import CSHyperModel, TicketGridSearch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a method: cs YAML config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--s0", type=float, nargs="+", default=[-0.1, 0.0, 0.1])
    parser.add_argument("--out", default="runs")
    parser.add_argument("--tuner-dir", default="tuning")
    args = parser.parse_args(argv)

    config = load_config(args.config, args.overrides)
    hypermodel = CSHyperModel(config, mask_initial_values=args.s0, out=args.out)
    tuner = TicketGridSearch(
        hypermodel,
        objective=hypermodel.objective,
        directory=args.tuner_dir,
        project_name="cs_family",
    )
    tuner.search()
    if tuner_role() == "worker":  # the chief holds the results (and may be gone)
        return tuner
    for trial in tuner.oracle.get_best_trials(len(args.s0)):
        hp = trial.hyperparameters
        print(
            f"s0={hp.get('mask_initial_value'):+.3f}: "
            f"{100 * trial.metrics.get_last_value('weights_remaining'):.2f}% of "
            f"weights remain, val accuracy "
            f"{trial.metrics.get_last_value('val_accuracy'):.4f}, "
            f"ticket {hypermodel.ticket_path(hp)}"
        )
    return tuner


if __name__ == "__main__":
    main()
