"""The rewinding study's table (and figure) from summary.json files.

    cd docs/results/resnet20_rewinding_gpu
    python ../../../benchmarks/device/study_table.py summary.json \
        --plot accuracy_vs_weights.png

Per round: mean +- sample std of test accuracy over seeds for each rewind point, and
the paired difference (k > 0 minus k = 0, same seed) with its range.
"""

from __future__ import annotations

import argparse
import json
import statistics


def by_rewind(runs):
    table = {}
    for run in runs:
        if not run["finished"]:
            raise SystemExit(f"{run['run']} did not finish")
        table.setdefault(run["rewind"], {})[run["seed"]] = run["rounds"]
    return table


def pp(values, sign=""):
    mean, std = 100 * statistics.mean(values), 100 * statistics.stdev(values)
    return f"{mean:{sign}.2f} ± {std:.2f}"


def rows(table, base="0it"):
    others = [k for k in table if k != base]
    seeds = sorted(table[base])
    for index, first in enumerate(table[base][seeds[0]]):
        accuracy = {
            k: [table[k][s][index]["test_accuracy"] for s in seeds] for k in table
        }
        train = {
            k: statistics.mean(
                table[k][s][index]["final_train_accuracy"] for s in seeds
            )
            for k in table
        }
        cells = [f"{first['round']}", f"{100 * first['remaining']:.2f}%"]
        cells += [pp(accuracy[k]) for k in [base, *others]]
        for k in others:
            diff = [b - a for a, b in zip(accuracy[base], accuracy[k], strict=True)]
            cells.append(
                f"{pp(diff, sign='+')} [{100 * min(diff):+.2f}, {100 * max(diff):+.2f}]"
            )
        cells.append(" / ".join(f"{100 * train[k]:.1f}" for k in [base, *others]))
        yield cells


def plot(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for rewind, seeds in table.items():
        runs = list(seeds.values())
        x = [100 * r["remaining"] for r in runs[0]]
        acc = [[run[i]["test_accuracy"] for run in runs] for i in range(len(x))]
        mean = [100 * statistics.mean(a) for a in acc]
        std = [100 * statistics.stdev(a) for a in acc]
        label = "k = 0 (reset to init)" if rewind == "0it" else f"k = {rewind}"
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks(x, [f"{v:.3g}" for v in x], rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel(f"test accuracy (%), mean ± std of {len(runs)} seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summaries", nargs="+")
    parser.add_argument("--plot")
    args = parser.parse_args()
    runs = [run for path in args.summaries for run in json.load(open(path))]
    table = by_rewind(runs)
    others = [k for k in table if k != "0it"]
    header = ["round", "remaining", "k = 0", *(f"k = {k}" for k in others)]
    header += [f"k = {k} minus k = 0 (paired)" for k in others]
    header.append("final train acc. " + " / ".join(["k = 0", *others]))
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for cells in rows(table):
        print("| " + " | ".join(cells) + " |")
    if args.plot:
        plot(table, args.plot)


if __name__ == "__main__":
    main()
