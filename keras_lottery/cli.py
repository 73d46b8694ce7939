"""Command line: ``keras-lottery {run, sweep, report, compare, demo, instability,
branch, retrain, rewind-sweep, export, elastic}``.

keras-lottery run configs/lenet_mnist.yaml --set pruning.rounds=3 --out runs
keras-lottery run configs/cs_resnet20_cifar10.yaml --set data.path=cifar10.npz
keras-lottery sweep configs/cs_resnet20_cifar10.yaml \
    --grid 'cs.mask_initial_value=[-0.1, 0.0, 0.1]' --jobs 3
keras-lottery sweep configs/cs_resnet20_cifar10.yaml \
    --grid 'cs.mask_initial_value=[-0.1, 0.0, 0.1]' --tuner   # chief/workers: env
keras-lottery report runs/imp_3f2a9c1d0b7e
keras-lottery compare runs/imp_3f2a9c1d0b7e runs/cs_9d1e2b3c4a5f --out runs/compare
keras-lottery demo
keras-lottery instability runs/imp_3f2a9c1d0b7e --round 3 --pairs 2
keras-lottery branch runs/imp_3f2a9c1d0b7e --round 3 --kind shuffle_masks
keras-lottery retrain runs/imp_3f2a9c1d0b7e --round 3 --tweak swish --tweak kd \
    --set retrain.kd_temperature=4
keras-lottery rewind-sweep configs/lenet_mnist.yaml --rewinds 0,100it,500it \
    --round 3 --set pruning.rounds=3 --out runs
keras-lottery export runs/imp_3f2a9c1d0b7e --round 3 --format litert --sparse \
    --out ticket.tflite
keras-lottery elastic runs/imp_3f2a9c1d0b7e --round 5 --to cifar_resnet_32 \
    --control random_prune --control permute_copies --out runs
"""

from __future__ import annotations

import argparse
import json
import sys

# Only modules that do not import Keras/TensorFlow at the top: `--help` and
# `--version` answer at once; each command imports what it needs when it runs.
from keras_lottery import __version__, paths
from keras_lottery.errors import ConfigError, LotteryError


def demo_config():
    """IMP on scikit-learn's bundled 8x8 digits with a LeNet-style MLP (offline)."""
    from keras_lottery.config import load_config

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
    """Runs one command; returns the exit status (2 for bad input, with the
    reason on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (LotteryError, ValueError, OSError, RuntimeError) as error:
        print(f"keras-lottery: error: {error}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="keras-lottery",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_sweep, _add_reports, _add_branches, _add_rewind_sweep):
        add(sub)
    _add_export(sub)
    _add_elastic(sub)
    return parser


def _add_run(sub) -> None:
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
        "--from-search",
        metavar="CS_RUN",
        help="CS: start from this finished CS run's search (same config up to "
        "cs.target_sparsity, cs.mode, baselines) and train only the ticket",
    )
    _wait_flag(run_p)
    _distribute_flag(run_p)
    run_p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved config and its run folder, then exit",
    )


def _add_sweep(sub) -> None:
    sweep_p = sub.add_parser(
        "sweep",
        help="run a grid of settings of a config side by side (e.g. CS's s0) "
        "and report the family of tickets",
    )
    sweep_p.add_argument("config", help="YAML file of the base config (see configs/)")
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
    sweep_p.add_argument(
        "--tuner",
        action="store_true",
        help="run the grid as a Keras Tuner search (GridSearch oracle), in this "
        "process, or as chief and workers on many machines with "
        "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT "
        "(docs/distributed.md)",
    )
    sweep_p.add_argument(
        "--tuner-dir",
        metavar="DIR",
        help="with --tuner: the Keras Tuner project goes to DIR/sweep_<hash> "
        "(default: the sweep folder's tuner/)",
    )


def _add_reports(sub) -> None:
    rep_p = sub.add_parser("report", help="table and plot of a run folder")
    rep_p.add_argument("run_dir", help="a run folder (runs/imp_<hash>)")
    cmp_p = sub.add_parser(
        "compare",
        help="IMP, CS and elastic runs side by side: accuracy vs. weights, epochs",
    )
    cmp_p.add_argument(
        "run_dirs", nargs="+", metavar="run_dir", help="finished run folders"
    )
    cmp_p.add_argument("--out", required=True, help="folder for comparison.*")
    cmp_p.add_argument(
        "--label",
        dest="labels",
        action="append",
        help="a name per run folder, in order (default: method and rewind point)",
    )
    demo_p = sub.add_parser(
        "demo", help="IMP on scikit-learn's digits (offline, ~2 min)"
    )
    demo_p.add_argument("--out", default="demo_runs")


def _add_branches(sub) -> None:
    ins_p = sub.add_parser(
        "instability",
        help="instability (linear mode connectivity) of a saved round (resumable)",
    )
    ins_p.add_argument("run_dir", help="an IMP run folder or an elastic run folder")
    ins_p.add_argument(
        "--round",
        type=int,
        help="round (0 = the dense network); IMP run folders only",
    )
    _stability_flags(ins_p)
    _wait_flag(ins_p)
    br_p = sub.add_parser(
        "branch", help="train a control from a saved round without redoing IMP"
    )
    br_p.add_argument("run_dir", help="an IMP run folder")
    br_p.add_argument("--round", type=int, required=True, help="pruned round (>= 1)")
    br_p.add_argument(
        "--kind",
        required=True,
        type=_control_kind,
        help="a registered control (keras_lottery.controls): random_reinit, "
        "random_prune, shuffle_masks, ...",
    )
    br_p.add_argument(
        "--seed", type=_seed, default=0, help="replicate seed, an int >= 0 (default 0)"
    )
    _wait_flag(br_p)
    _distribute_flag(br_p)

    rt_p = sub.add_parser(
        "retrain",
        help="train a saved round's ticket again with sparse-retraining tweaks "
        "(swish, label_smoothing, kd, ...) as a branch of the run (resumable)",
    )
    rt_p.add_argument("run_dir", help="an IMP run folder")
    rt_p.add_argument("--round", type=int, required=True, help="pruned round (>= 1)")
    rt_p.add_argument(
        "--tweak",
        dest="tweaks",
        action="append",
        default=[],
        type=_tweak_name,
        help="a tweak (repeatable): swish, mish, elu, softplus, gelu, pswish, "
        "extra_skips, label_smoothing, kd, lrsi; none = vanilla retraining",
    )
    rt_p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a retrain.* setting, e.g. retrain.kd_alpha=0.5 (repeatable)",
    )
    rt_p.add_argument(
        "--seed", type=_seed, default=0, help="replicate seed, an int >= 0 (default 0)"
    )
    _wait_flag(rt_p)


def _tweak_name(text: str) -> str:
    """argparse type of ``--tweak``: a registered tweak."""
    from keras_lottery.tweaks import registry

    if text not in registry.names():
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(registry.names())})"
        )
    return text


def _distribute_flag(parser) -> None:
    parser.add_argument(
        "--distribute",
        choices=("mirrored", "multi_worker", "tpu"),
        help="train with a tf.distribute strategy: mirrored (the local GPUs), "
        "multi_worker (the cluster in TF_CONFIG; run the same command on every "
        "worker, the run folder on a shared filesystem), tpu "
        "(docs/distributed.md)",
    )


def _strategy(args):
    """The ``--distribute`` strategy (``None`` without the flag) and whether
    this process is the chief (the one that writes and prints reports)."""
    from keras_lottery import distributed

    # A strategy is made before anything else runs TensorFlow ops.
    name = getattr(args, "distribute", None)
    strategy = distributed.make_strategy(name) if name else None
    return strategy, distributed.is_chief(strategy) if strategy is not None else True


def _wait_flag(parser) -> None:
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another process is working in the run folder, wait for it "
        "(default: exit with an error naming its PID)",
    )


def _add_rewind_sweep(sub) -> None:
    sw_p = sub.add_parser(
        "rewind-sweep",
        help="IMP with several rewind points, instability and controls at one round",
    )
    sw_p.add_argument("config", help="YAML file (see configs/)")
    sw_p.add_argument(
        "--rewinds", required=True, help="comma-separated rewind points: 0,100it,2ep"
    )
    sw_p.add_argument("--round", type=int, required=True, help="round to analyze")
    sw_p.add_argument("--out", default="runs", help="root folder of run folders")
    sw_p.add_argument(
        "--dense",
        action="store_true",
        help="also the dense network's instability at each k (stability.sweep_dense)",
    )
    sw_p.add_argument(
        "--no-share-dense",
        action="store_true",
        help="train each run's dense round separately (default: once, shared)",
    )
    _stability_flags(sw_p)


def _control_kind(text: str) -> str:
    """argparse type of ``--kind``: a registered control. Checked only when
    ``branch`` is parsed, so ``--help`` need not import the controls (Keras)."""
    from keras_lottery import controls

    if text not in controls.names():
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(controls.names())})"
        )
    return text


def _seed(text: str) -> int:
    """argparse type of ``--seed``: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an int >= 0; got {text!r}")
    return value


def _add_elastic(sub) -> None:
    el_p = sub.add_parser(
        "elastic",
        help="stretch or squeeze a saved round's ticket to another depth and "
        "train it (Elastic LTH; resumable)",
    )
    el_p.add_argument("run_dir", help="an IMP run folder")
    el_p.add_argument("--round", type=int, required=True, help="pruned round (>= 1)")
    el_p.add_argument("--to", required=True, help="target model, e.g. cifar_resnet_32")
    how = el_p.add_mutually_exclusive_group()
    how.add_argument(
        "--strategy",
        choices=("inter", "head", "tail", "first"),
        help="how blocks are replicated or dropped (default inter)",
    )
    how.add_argument("--map", help="explicit block map, e.g. '1:1,2;2:3,4'")
    el_p.add_argument(
        "--control",
        dest="controls",
        action="append",
        default=[],
        type=_control_kind,
        help="also train this control on the target (repeatable): random_reinit, "
        "random_prune, shuffle_masks, permute_copies, ...",
    )
    el_p.add_argument(
        "--seed", type=_seed, default=0, help="replicate seed, an int >= 0 (default 0)"
    )
    el_p.add_argument("--out", default="runs", help="root folder of run folders")


def _elastic(args) -> int:
    from keras_lottery.runs.elastic import run_elastic, write_elastic_report

    directory = run_elastic(
        args.run_dir,
        args.round,
        args.to,
        strategy=args.strategy,
        mapping=args.map,
        out=args.out,
        controls=args.controls,
        seed=args.seed,
    )
    print(f"\n{write_elastic_report(directory)}\n\nrun folder: {directory}")
    return 0


def _run(args) -> int:
    from keras_lottery.config import load_config

    config = (
        demo_config()
        if args.command == "demo"
        else load_config(args.config, args.overrides)
    )
    if getattr(args, "print_config", False):
        print(config.to_yaml() + f"# run folder: {args.out}/{config.hashname()}")
        return 0
    strategy, chief = _strategy(args)
    from keras_lottery._messages import print_msg
    from keras_lottery.methods import registry
    from keras_lottery.runs.report import write_report
    from keras_lottery.runs.runner import run
    from keras_lottery.runs.sharing import seed_cs_search

    if chief and getattr(args, "from_search", None):
        if seed_cs_search(args.from_search, config, args.out):
            print_msg(f"[keras_lottery] search rounds copied from {args.from_search}")
    directory = run(
        config, out=args.out, wait=getattr(args, "wait", False), strategy=strategy
    )
    if not chief:
        print_msg(f"[keras_lottery] worker done; the chief wrote {directory}")
        return 0
    plot = registry.get(config.method).plot_name
    print(
        f"\n{write_report(directory)}\n\nrun folder: {directory}\n"
        f"plot: {directory}/{plot}"
    )
    return 0


def _sweep(args) -> int:
    from keras_lottery.runs.sweep import parse_grid, run_sweep

    if args.tuner_dir and not args.tuner:
        raise ValueError("--tuner-dir goes with --tuner.")
    if args.tuner:
        return _tuner_sweep(args, parse_grid(args.grid))
    directory = run_sweep(
        args.config,
        parse_grid(args.grid),
        args.overrides,
        out=args.out,
        jobs=args.jobs,
    )
    return _print_sweep(directory)


def _print_sweep(directory) -> int:
    with open(paths.sweep_text(directory)) as handle:
        print(f"\n{handle.read()}\nsweep folder: {directory}")
    return 0


def _tuner_sweep(args, grid) -> int:
    from keras_lottery.runs.tuner_sweep import run_tuner_sweep, tuner_role

    if args.jobs != 1:
        raise ValueError(
            "--tuner runs one trial at a time per process: start more Keras "
            "Tuner workers (docs/distributed.md), or use --jobs without --tuner."
        )
    directory = run_tuner_sweep(
        args.config, grid, args.overrides, out=args.out, tuner_dir=args.tuner_dir
    )
    return 0 if tuner_role() == "worker" else _print_sweep(directory)


def _report(args) -> int:
    from keras_lottery.runs.elastic import is_elastic_run, write_elastic_report
    from keras_lottery.runs.report import write_report

    if is_elastic_run(args.run_dir):
        print(write_elastic_report(args.run_dir))
        return 0
    print(write_report(args.run_dir))
    return 0


def _compare(args) -> int:
    from keras_lottery.runs.compare import write_comparison

    print(write_comparison(args.run_dirs, args.out, args.labels))
    print(
        f"\ncomparison: {paths.comparison(args.out, 'txt')}, "
        f"{paths.comparison(args.out, 'png')}"
    )
    return 0


def _stability_flags(parser) -> None:
    parser.add_argument("--pairs", type=int, help="pairs of copies (stability.pairs)")
    parser.add_argument(
        "--points", type=int, help="interpolation points (stability.points, 30)"
    )
    parser.add_argument(
        "--threshold",
        type=float,
        help="stable below this barrier (stability.threshold, 0.02)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (run folders: stability.* only)",
    )


def _flag_overrides(args) -> list[str]:
    flags = {"pairs": args.pairs, "points": args.points, "threshold": args.threshold}
    return list(args.overrides) + [
        f"stability.{k}={v}" for k, v in flags.items() if v is not None
    ]


def _instability(args) -> int:
    from keras_lottery.analysis import InstabilityResult
    from keras_lottery.runs import elastic as elastic_runs
    from keras_lottery.runs.branches import run_instability
    from keras_lottery.runs.report import write_report

    if elastic_runs.is_elastic_run(args.run_dir):
        if args.round is not None:
            raise ConfigError(
                f"{args.run_dir} is an elastic run folder (one ticket): leave out "
                "--round."
            )
        summary = elastic_runs.run_elastic_instability(
            args.run_dir, _flag_overrides(args), wait=args.wait
        )
        elastic_runs.write_elastic_report(args.run_dir)
        directory = paths.elastic_instability_dir(args.run_dir)
        print(
            f"\n{InstabilityResult.from_dict(summary).summary()}\n\n"
            f"results: {directory}/instability.json\nplot: "
            f"{directory}/instability.png\nreport: {args.run_dir}/report.txt"
        )
        return 0
    if args.round is None:
        raise ConfigError(
            f"Give --round for the IMP run folder {args.run_dir} (0 = the dense "
            "network)."
        )
    summary = run_instability(
        args.run_dir, args.round, _flag_overrides(args), wait=args.wait
    )
    write_report(args.run_dir)  # the round table gains an instability column
    directory = paths.instability_dir(args.run_dir, args.round)
    print(
        f"\n{InstabilityResult.from_dict(summary).summary()}\n\n"
        f"results: {directory}/instability.json\nplot: {directory}/instability.png"
        f"\nreport: {args.run_dir}/report.txt, instability_vs_weights.png"
    )
    return 0


def _branch(args) -> int:
    strategy, chief = _strategy(args)
    from keras_lottery.runs.branches import run_branch
    from keras_lottery.runs.report import write_report

    run_branch(
        args.run_dir,
        args.round,
        args.kind,
        seed=args.seed,
        wait=args.wait,
        strategy=strategy,
    )
    if not chief:
        return 0
    directory = paths.branch_dir(args.run_dir, args.round, args.kind, args.seed)
    print(f"\n{write_report(args.run_dir)}\n\nrecord: {paths.record(directory)}")
    return 0


def _retrain(args) -> int:
    from keras_lottery.runs.report import write_report
    from keras_lottery.runs.retrain import run_retrain

    record = run_retrain(
        args.run_dir,
        args.round,
        args.tweaks,
        args.overrides,
        seed=args.seed,
        wait=args.wait,
    )
    print(
        f"\n{write_report(args.run_dir)}\n\nretrained: retrain:{record['label']} "
        f"(round {args.round}, seed {args.seed})"
    )
    return 0


def _rewind_sweep(args) -> int:
    from keras_lottery.config import load_config
    from keras_lottery.runs.rewind_sweep import format_sweep_table, rewind_sweep

    dense = ["stability.sweep_dense=true"] if args.dense else []
    config = load_config(args.config, _flag_overrides(args) + dense)
    directory = rewind_sweep(
        config,
        args.rewinds,
        args.round,
        out=args.out,
        share_dense=not args.no_share_dense,
    )
    with open(paths.sweep_json(directory)) as handle:
        rows = json.load(handle)["rows"]
    print(
        f"\n{format_sweep_table(rows)}\n\nsweep folder: {directory}\nplots: "
        f"{paths.REWIND_ACCURACY_PLOT}, {paths.REWIND_INSTABILITY_PLOT}, "
        f"{paths.REWIND_CURVES_PLOT}"
    )
    return 0


def _add_export(sub) -> None:
    ex_p = sub.add_parser(
        "export",
        help="ship a ticket: SavedModel, .keras, LiteRT, ONNX or sparse npz, "
        "with a size report",
    )
    ex_p.add_argument(
        "source",
        help="run folder, ticket file (.npz) or retraining folder "
        "(RUN/retrain/round_NNN/retrain_<hash>/seed_S)",
    )
    ex_p.add_argument(
        "--round", type=int, help="IMP round (default: the last finished one)"
    )
    ex_p.add_argument(
        "--format",
        required=True,
        choices=["saved_model", "keras", "litert", "onnx", "sparse-npz"],
    )
    ex_p.add_argument("--out", required=True, help="output file or folder")
    ex_p.add_argument(
        "--weights",
        choices=["trained", "rewind"],
        default="trained",
        help="the ticket after training (default) or at its rewind point",
    )
    ex_p.add_argument("--overwrite", action="store_true", help="replace --out")
    ex_p.add_argument(
        "--sparse", action="store_true", help="litert: store kernels sparsely"
    )
    ex_p.add_argument(
        "--quantize",
        choices=["dynamic", "float16"],
        help="litert: post-training quantization",
    )
    ex_p.add_argument("--report", help="size report JSON (default: <out>.size.json)")


def _export(args) -> int:
    from keras_lottery.runs.export import export_run, report_path

    result = export_run(
        args.source,
        args.out,
        args.format,
        round=args.round,
        weights=args.weights,
        overwrite=args.overwrite,
        sparse=args.sparse,
        quantize=args.quantize,
        report=args.report,
    )
    extra = result.source.get("extra_skip_parameters")
    if extra:
        print(f"extra skip paths: {extra:,} dense parameters, outside the sparsity")
    print(f"{result}\nsize report: {args.report or report_path(args.out)}")
    return 0


COMMANDS = {
    "run": _run,
    "demo": _run,
    "sweep": _sweep,
    "report": _report,
    "compare": _compare,
    "instability": _instability,
    "branch": _branch,
    "retrain": _retrain,
    "rewind-sweep": _rewind_sweep,
    "export": _export,
    "elastic": _elastic,
}


if __name__ == "__main__":
    sys.exit(main())
