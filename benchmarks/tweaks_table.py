"""Markdown table of retraining tweaks on round 1 of several IMP runs (one run a
seed), written by ``benchmarks/tweaks_cifar_study.sh``: each arm's test accuracy
(mean ± std over runs) and its paired difference to vanilla retraining, which is
the run's own round-1 ticket training (same recipe, budget, start and data order).
``--runs LABEL=DIR`` adds the round-R tickets of other IMP runs, paired by seed, as
an arm (e.g. the same recipe with learning-rate rewinding).

    python benchmarks/tweaks_table.py runs/elastic_cpu/imp --json summary.json
    python benchmarks/tweaks_table.py runs/tweaks_10/imp \
        --runs "learning-rate rewinding=runs/lrr/imp"
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics

import yaml

VANILLA = "vanilla (IMP's own ticket training)"


def collect(imp_dir: str, round: int = 1) -> dict[str, dict[int, float]]:
    """``{arm: {seed: test accuracy}}`` over the IMP runs under ``imp_dir``."""
    rows: dict[str, dict[int, float]] = {VANILLA: tickets(imp_dir, round)}
    phase = f"round_{round:03d}"
    for run in sorted(glob.glob(os.path.join(imp_dir, "imp_*"))):
        with open(os.path.join(run, "config.yaml")) as handle:
            seed = yaml.safe_load(handle)["seed"]
        pattern = os.path.join(run, "retrain", phase, "*", "seed_0", "record.json")
        for path in sorted(glob.glob(pattern)):
            with open(path) as handle:
                retrain = json.load(handle)
            accuracy = retrain["training"]["test"]["accuracy"]
            rows.setdefault(arm_name(retrain), {})[seed] = accuracy
    return rows


def tickets(imp_dir: str, round: int = 1) -> dict[int, float]:
    """``{seed: test accuracy of round ``round``'s ticket}`` of the IMP runs
    under ``imp_dir``."""
    out = {}
    for run in sorted(glob.glob(os.path.join(imp_dir, "imp_*"))):
        with open(os.path.join(run, "config.yaml")) as handle:
            seed = yaml.safe_load(handle)["seed"]
        with open(os.path.join(run, f"round_{round:03d}", "record.json")) as handle:
            out[seed] = json.load(handle)["ticket"]["test"]["accuracy"]
    return out


def arm_name(retrain: dict) -> str:
    """The tweaks, then the settings that differ from their defaults:
    ``extra_skips (skip_bn_gamma=0.0)``."""
    from keras_lottery.config import RetrainConfig

    settings = retrain.get("settings") or {}
    defaults = RetrainConfig().__dict__
    changed = [
        f"{key}={value}"
        for key, value in sorted(settings.items())
        if key != "tweaks" and key in defaults and value != defaults[key]
    ]
    name = "+".join(settings.get("tweaks") or []) or retrain["label"]
    return f"{name} ({', '.join(changed)})" if changed else name


def table(rows: dict[str, dict[int, float]]) -> str:
    """Mean ± std (%) per arm and mean [min, max] paired differences (pp).

    >>> print(table({VANILLA: {0: 0.5, 1: 0.6}, "kd": {0: 0.52, 1: 0.61}}))
    """
    base = rows[VANILLA]
    lines = [
        "| arm | seeds | test accuracy % (mean ± std) | minus vanilla, pp (paired) "
        "[range] |",
        "|---|---|---|---|",
    ]
    for name, by_seed in rows.items():
        values = list(by_seed.values())
        spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
        paired = "-"
        if name != VANILLA:
            diffs = [by_seed[s] - base[s] for s in by_seed]
            paired = (
                f"{100 * statistics.mean(diffs):+.1f} "
                f"[{100 * min(diffs):+.1f}, {100 * max(diffs):+.1f}]"
            )
        seeds = ",".join(str(s) for s in sorted(by_seed))
        lines.append(
            f"| {name} | {seeds} | {100 * statistics.mean(values):.1f}{spread} "
            f"| {paired} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("imp_dir", help="folder holding the IMP run folders")
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument(
        "--runs",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="other IMP runs (one a seed) whose round-R tickets are an arm",
    )
    parser.add_argument("--json", help="also write {arm: {seed: accuracy}} here")
    args = parser.parse_args(argv)
    rows = collect(args.imp_dir, args.round)
    for spec in args.runs:
        label, sep, directory = spec.rpartition("=")  # labels may hold "="
        if not sep or not label or not os.path.isdir(directory):
            parser.error(f"--runs takes LABEL=DIR with an existing DIR; got {spec!r}")
        rows[label] = tickets(directory, args.round)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
