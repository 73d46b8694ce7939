"""Command line: ``keras-lottery {run, sweep, report, demo}``.

keras-lottery run configs/lenet_mnist.yaml --set pruning.rounds=3 --out runs
keras-lottery run configs/cs_resnet20_cifar10.yaml --set data.path=cifar10.npz
keras-lottery sweep configs/cs_resnet20_cifar10.yaml \
    --grid 'cs.mask_initial_value=[-0.1, 0.0, 0.1]' --jobs 3
keras-lottery report runs/imp_3f2a9c1d0b7e
keras-lottery demo
"""

from __future__ import annotations

import argparse
import sys

from keras_lottery.config import ConfigError, RunConfig, load_config


def demo_config() -> RunConfig:
    """IMP on scikit-learn's bundled 8x8 digits with a LeNet-style MLP (offline)."""
    return load_config(
        None,
        [
            "data.name=digits",
            "data.validation_size=180",
            "training.learning_rate=0.0012",
            "training.batch_size=60",
            "training.duration=30ep",
            "pruning.rounds=5",
            "pruning.fraction=0.5",
            "pruning.scope=layerwise",
            "pruning.layer_fractions={output: 0.25}",
            "baselines=[random_reinit]",
        ],
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="keras-lottery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser(
        "run", help="run (or resume) a YAML config: IMP or Continuous Sparsification"
    )
    run_p.add_argument("config", help="YAML file (see configs/)")
    run_p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. pruning.rounds=3 (repeatable)",
    )
    run_p.add_argument("--out", default="runs", help="root folder of run folders")
    run_p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config and its run folder, then exit",
    )
    sweep_p = sub.add_parser(
        "sweep",
        help="run a grid of settings of a config side by side (e.g. CS's s0) "
        "and report the family of tickets",
    )
    sweep_p.add_argument("config", help="YAML file (see configs/)")
    sweep_p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=[V1, V2]",
        help="a config field and its values as a YAML list (repeatable: the "
        "sweep runs every combination)",
    )
    sweep_p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE"
    )
    sweep_p.add_argument("--out", default="runs", help="root folder of run folders")
    sweep_p.add_argument(
        "--jobs", type=int, default=1, help="settings run at once (processes)"
    )
    rep_p = sub.add_parser("report", help="table and plot of a run folder")
    rep_p.add_argument("run_dir")
    demo_p = sub.add_parser(
        "demo", help="IMP on scikit-learn's digits (offline, ~2 min)"
    )
    demo_p.add_argument("--out", default="demo_runs")
    args = parser.parse_args(argv)

    try:
        if args.command == "sweep":
            from keras_lottery.sweep import parse_grid, run_sweep

            directory = run_sweep(
                args.config,
                parse_grid(args.grid),
                args.overrides,
                out=args.out,
                jobs=args.jobs,
            )
            with open(f"{directory}/sweep.txt") as handle:
                print(f"\n{handle.read()}\nsweep folder: {directory}")
            return 0
        if args.command == "report":
            from keras_lottery.report import write_report

            print(write_report(args.run_dir))
            return 0
        config = (
            demo_config()
            if args.command == "demo"
            else load_config(args.config, args.overrides)
        )
        if getattr(args, "print_config", False):
            print(config.to_yaml() + f"# run folder: {args.out}/{config.hashname()}")
            return 0
        from keras_lottery.report import (
            CS_PLOT_NAME,
            PLOT_NAME,
            is_cs_run,
            write_report,
        )
        from keras_lottery.runner import run

        directory = run(config, out=args.out)
        plot = CS_PLOT_NAME if is_cs_run(directory) else PLOT_NAME
        print(
            f"\n{write_report(directory)}\n\nrun folder: {directory}\n"
            f"plot: {directory}/{plot}"
        )
        return 0
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"keras-lottery: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
