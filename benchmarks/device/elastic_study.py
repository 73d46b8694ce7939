"""The Elastic LTH study's elastic runs and summary, on JAX without TensorFlow.

``benchmarks/device/elastic_study.sh`` first runs IMP on ResNet-20 and ResNet-32
with ``rewinding_study.py`` (NumPy-fed CIFAR augmentation), then, per seed, this
script's ``elastic`` command: the source run's last round transformed to the
other depth by :func:`keras_lottery.runs.elastic.run_elastic` and trained with
the same recipe (and the same NumPy feeding) from the rewind step, with
controls. ``summarize`` gathers every arm into one JSON.

    KERAS_BACKEND=jax python benchmarks/device/elastic_study.py elastic \\
        --imp-runs runs/imp --model cifar_resnet_20 --seed 0 --round 3 \\
        --to cifar_resnet_32 --control random_prune --out runs/elastic
    python benchmarks/device/elastic_study.py summarize runs > summary.json
    python benchmarks/device/elastic_study.py table summary.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))


def find_imp_run(imp_runs: str, model: str, seed: int) -> str:
    """The IMP run folder under ``imp_runs`` of ``model`` and ``seed``."""
    for config_path in sorted(glob.glob(os.path.join(imp_runs, "*", "config.yaml"))):
        with open(config_path) as handle:
            config = yaml.safe_load(handle)
        if config["model"]["name"] == model and config["seed"] == seed:
            return os.path.dirname(config_path)
    raise SystemExit(f"No IMP run of {model} with seed {seed} under {imp_runs}.")


def numpy_recipe(config):
    """The config's recipe fed by NumPy batches (no tf.data on the device)."""
    from rewinding_study import NumpyRecipe

    from keras_lottery.data.datasets import load_dataset

    return NumpyRecipe(config, splits=load_dataset(config.data))


def run(args) -> None:
    from keras_lottery import paths
    from keras_lottery.runs.elastic import run_elastic

    source = find_imp_run(args.imp_runs, args.model, args.seed)
    round = args.round
    if round < 0:  # the last finished round (an IMP run stopped at its limit)
        finished = [r for r in paths.finished_phases(source, paths.ROUND) if r]
        if not finished:
            raise SystemExit(f"{source} has no finished pruned round.")
        round = finished[-1]
    began = time.perf_counter()
    directory = run_elastic(
        source,
        round,
        args.to,
        strategy=args.strategy,
        out=args.out,
        controls=args.control,
        recipe_factory=numpy_recipe,
    )
    print(f"[study] {directory} finished in {time.perf_counter() - began:.0f} s")


def _imp_rows(directory: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "round_*", "record.json"))):
        with open(path) as handle:
            record = json.load(handle)
        ticket = record["ticket"]
        rows.append(
            {
                "round": record["round"],
                "remaining": record["fraction_remaining"],
                "test_accuracy": (ticket.get("test") or {}).get("accuracy"),
                "epochs": ticket["epochs"],
                "wall_time": ticket["wall_time"],
            }
        )
    return rows


def summarize(study_dir: str) -> dict:
    """IMP rounds of every source/target run and every elastic arm, as JSON.
    Reads only finished records, so a stopped study still summarizes."""
    imp = []
    for config_path in sorted(
        glob.glob(os.path.join(study_dir, "imp", "*", "config.yaml"))
    ):
        directory = os.path.dirname(config_path)
        with open(config_path) as handle:
            config = yaml.safe_load(handle)
        rounds = _imp_rows(directory)
        imp.append(
            {
                "run": os.path.basename(directory),
                "model": config["model"]["name"],
                "seed": config["seed"],
                "rounds": rounds,
                "epochs_total": sum(r["epochs"] for r in rounds),
                "wall_time_total": sum(r["wall_time"] for r in rounds),
            }
        )
    models = {run["run"]: run for run in imp}
    elastic = []
    for spec_path in sorted(
        glob.glob(os.path.join(study_dir, "elastic", "*", "elastic.json"))
    ):
        directory = os.path.dirname(spec_path)
        with open(spec_path) as handle:
            spec = json.load(handle)
        arms = {}
        for path in sorted(glob.glob(os.path.join(directory, "arms", "*", "*.json"))):
            with open(path) as handle:
                record = json.load(handle)
            training = record["training"]
            arms[record["arm"]] = {
                "remaining": record["fraction_remaining"],
                "test_accuracy": (training.get("test") or {}).get("accuracy"),
                "epochs": training["steps"] / record["steps_per_epoch"],
                "wall_time": training["wall_time"],
            }
        source = models.get(spec["source_run"], {})
        elastic.append(
            {
                "run": os.path.basename(directory),
                "source_model": source.get("model"),
                "seed": source.get("seed"),
                "round": spec["round"],
                "target": spec["target"],
                "map": spec["map"],
                "source_remaining": spec["source_fraction_remaining"],
                "arms": arms,
            }
        )
    return {"imp": imp, "elastic": elastic}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    spread = f" ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else ""
    return f"{100 * statistics.mean(values):.1f}{spread} (n={len(values)})"


def _paired(arm: dict, base: dict) -> str:
    seeds = sorted(set(arm) & set(base))
    diffs = [arm[s] - base[s] for s in seeds]
    if not diffs:
        return "-"
    low, high = 100 * min(diffs), 100 * max(diffs)
    return f"{100 * statistics.mean(diffs):+.1f} [{low:+.1f}, {high:+.1f}]"


def table(summary: dict) -> str:
    """Markdown tables of a study summary, one per direction (source -> target):
    each arm's test accuracy (mean ± std over seeds, %) next to the target's
    dense network and its own IMP ticket, paired differences against that
    ticket, and the cost of the target's mask (epochs and wall time of the
    IMP rounds that produce it) by IMP on the target vs by E-LTH."""
    imp = {(run["model"], run["seed"]): run for run in summary["imp"]}
    directions = sorted({(e["source_model"], e["target"]) for e in summary["elastic"]})
    out = []
    for source, target in directions:
        rows: dict[str, dict[int, float]] = {}
        remaining: dict[str, list[float]] = {}
        cost = {"IMP on the target": [], "E-LTH (the source's IMP)": []}

        def add(name, seed, accuracy, fraction, rows=rows, remaining=remaining):
            if accuracy is not None:
                rows.setdefault(name, {})[seed] = accuracy
                remaining.setdefault(name, []).append(fraction)

        for entry in summary["elastic"]:
            if (entry["source_model"], entry["target"]) != (source, target):
                continue
            seed = entry["seed"]
            for arm, row in entry["arms"].items():
                name = "E-LTH ticket" if arm == "ticket" else f"E-LTH {arm}"
                add(name, seed, row["test_accuracy"], row["remaining"])
        for (model, seed), run in sorted(imp.items()):
            rounds = run["rounds"]
            if model == target and rounds:
                add("target dense", seed, rounds[0]["test_accuracy"], 1.0)
                if len(rounds) > 1:
                    last = rounds[-1]
                    add(
                        "target IMP ticket",
                        seed,
                        last["test_accuracy"],
                        last["remaining"],
                    )
                    cost["IMP on the target"].append(rounds[:-1])
            if model == source and len(rounds) > 1:
                cost["E-LTH (the source's IMP)"].append(rounds[:-1])
        base = rows.get("target IMP ticket", {})
        out += [
            f"### {source} -> {target}",
            "",
            "| arm | weights remaining | test accuracy % | minus target IMP ticket, "
            "pp (paired) [range] |",
            "|---|---|---|---|",
        ]
        first = ["target dense", "target IMP ticket", "E-LTH ticket"]
        order = sorted(rows, key=lambda n: (first.index(n) if n in first else 3, n))
        for name in order:
            by_seed = rows[name]
            fraction = statistics.mean(remaining[name])
            paired = "" if name == "target IMP ticket" else _paired(by_seed, base)
            out.append(
                f"| {name} | {100 * fraction:.1f}% | "
                f"{_mean_std(list(by_seed.values()))} | {paired} |"
            )
        out += ["", "| mask of the target ticket by | epochs | wall time (s) |"]
        out.append("|---|---|---|")
        for name, runs in cost.items():
            if runs:
                epochs = statistics.mean(sum(r["epochs"] for r in rs) for rs in runs)
                wall = statistics.mean(sum(r["wall_time"] for r in rs) for rs in runs)
                where = target if name.startswith("IMP") else source
                out.append(f"| {name} | {epochs:.0f} on {where} | {wall:.0f} |")
        out.append("")
    return "\n".join(out)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    el = sub.add_parser("elastic", help="transform and train one source run")
    el.add_argument("--imp-runs", required=True, help="folder of the IMP runs")
    el.add_argument("--model", required=True, help="source model name")
    el.add_argument("--seed", type=int, required=True, help="source run's seed")
    el.add_argument(
        "--round", type=int, required=True, help="-1: the last finished round"
    )
    el.add_argument("--to", required=True, help="target model name")
    el.add_argument("--strategy", default="inter")
    el.add_argument("--control", action="append", default=[])
    el.add_argument("--out", required=True)
    su = sub.add_parser("summarize", help="JSON of a study folder")
    su.add_argument("study_dir", help="holds imp/ and elastic/")
    ta = sub.add_parser("table", help="markdown tables of a summary JSON")
    ta.add_argument("summary", help="summarize's output")
    args = parser.parse_args(argv)
    if args.command == "elastic":
        run(args)
    elif args.command == "table":
        with open(args.summary) as handle:
            print(table(json.load(handle)))
    else:
        print(json.dumps(summarize(args.study_dir), indent=1))


if __name__ == "__main__":
    main()
