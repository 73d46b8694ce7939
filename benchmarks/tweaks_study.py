"""Sparse-retraining tweaks on one IMP ticket: LeNet-300-100 on the MNIST subset.

Runs (or resumes) one IMP run of ``configs/lenet_mnist.yaml`` on
``--data`` with the study's overrides (default: 10 epochs per round, 50% of the
remaining weights pruned per round, the output layer at 25%, 5 rounds: 3.1% of
the hidden weights left; no in-run controls), then retrains the last round's
ticket from its rewind point once per arm and seed with ``keras-lottery
retrain`` (``keras_lottery.runs.retrain.run_retrain``: branches of the run
folder, so an interrupted study resumes). Every arm gets the same budget: the
run's own recipe from the rewind step to the end.

Arms (``--arms``): ``vanilla`` (no tweak), ``swish``, ``label_smoothing``,
``kd``, and ``swish+label_smoothing+kd`` (all combined); ``a+b`` combines any.
The JSON holds every arm's per-seed test accuracy, mean and std, and the
paired differences to ``vanilla`` (same seed: same data order).

    python benchmarks/tweaks_study.py --data ../shared/data/mnist_subset.npz \\
        --out runs/tweaks_study --seeds 3 --json benchmarks/results/tweaks_study.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from keras_lottery._io import atomic_write_json  # noqa: E402
from keras_lottery.config import load_config  # noqa: E402
from keras_lottery.training import metric_of  # noqa: E402

CONFIG = os.path.join(os.path.dirname(HERE), "configs", "lenet_mnist.yaml")
STUDY = [
    "training.duration=10ep",
    "pruning.fraction=0.5",
    "pruning.layer_fractions={output: 0.25}",
    "pruning.rounds=5",
    "baselines=[]",
]
ARMS = ("vanilla", "swish", "label_smoothing", "kd", "swish+label_smoothing+kd")


def arm_tweaks(arm: str) -> list[str]:
    """``"swish+kd"`` -> ``["swish", "kd"]``; ``"vanilla"`` -> ``[]``."""
    return [] if arm == "vanilla" else arm.split("+")


def summarize(accuracies: dict[str, list[float]], baseline: str = "vanilla") -> dict:
    """Per arm: the accuracies, their mean and std (0 for one seed), and the
    paired differences to ``baseline`` (seed by seed) with their mean and std.

    >>> summarize({"vanilla": [0.9, 0.8], "kd": [0.95, 0.8]})["kd"]["paired"]
    {'differences': [0.05..., 0.0], 'mean': 0.025..., 'std': 0.035...}
    """
    out = {}
    for arm, values in accuracies.items():
        entry = {"accuracy": values, **_stats(values)}
        if arm != baseline and baseline in accuracies:
            base = accuracies[baseline]
            if len(base) != len(values):
                raise ValueError(
                    f"arm {arm!r} has {len(values)} seeds, {baseline!r} {len(base)}."
                )
            diffs = [a - b for a, b in zip(values, base, strict=True)]
            entry["paired"] = {"differences": diffs, **_stats(diffs)}
        out[arm] = entry
    return out


def _stats(values: list[float]) -> dict:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "std": std}


def format_table(arms: dict) -> str:
    lines = [f"{'arm':<28} {'accuracy (mean ± std)':>22} {'vs vanilla (paired)':>22}"]
    for arm, entry in arms.items():
        paired = entry.get("paired")
        diff = (
            f"{100 * paired['mean']:+.2f} ± {100 * paired['std']:.2f} pp"
            if paired
            else "-"
        )
        lines.append(
            f"{arm:<28} {100 * entry['mean']:>13.2f} ± {100 * entry['std']:.2f}% "
            f"{diff:>22}"
        )
    return "\n".join(lines)


def run_study(args) -> dict:
    from keras_lottery.runs.retrain import run_retrain
    from keras_lottery.runs.runner import run

    overrides = [f"data.path={args.data}", *STUDY, *args.overrides]
    config = load_config(args.config, overrides)
    run_dir = run(config, out=args.out, verbose=args.verbose)
    round_ = config.pruning.rounds if args.round is None else args.round
    accuracies, fraction = {}, None
    for arm in args.arms:
        accuracies[arm] = []
        for seed in range(args.seeds):
            record = run_retrain(
                run_dir, round_, arm_tweaks(arm), seed=seed, verbose=args.verbose
            )
            accuracies[arm].append(metric_of(record["training"], "accuracy"))
            fraction = record["fraction_remaining"]
    return {
        "command": " ".join(sys.argv),
        "config": config.to_dict(),
        "run_dir": run_dir,
        "round": round_,
        "fraction_remaining": fraction,
        "seeds": args.seeds,
        "arms": summarize(accuracies),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the MNIST subset .npz")
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--out", default="runs/tweaks_study")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--round", type=int, help="the round to retrain (default: the last)"
    )
    parser.add_argument(
        "--arms",
        type=lambda text: text.split(","),
        default=list(ARMS),
        help=f"comma-separated arms (default: {','.join(ARMS)})",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE"
    )
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--verbose", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run_study(args)
    print(
        f"round {result['round']}: {100 * result['fraction_remaining']:.2f}% "
        f"weights remaining, {args.seeds} seed(s)\n{format_table(result['arms'])}"
    )
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
