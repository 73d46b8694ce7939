"""Reports of IMP runs: the round table and a plot of test accuracy vs. weights
remaining (log x axis) for the ticket and its controls; branch results (controls
run later, instability analyses) join the table, and analyzed rounds get
``instability_vs_weights.png``.

Example:

>>> print(write_report("runs/imp_3f2a9c1d0b7e"))
"""

from __future__ import annotations

import glob
import json
import os

from keras_lottery._io import atomic_write_bytes, atomic_write_text
from keras_lottery.imp import _metric, format_round_table

PLOT_NAME = "accuracy_vs_weights.png"
INSTABILITY_PLOT = "instability_vs_weights.png"
_TICKS = (100, 50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05, 0.01)


def load_rounds(directory: str) -> list[dict]:
    """The finished rounds' records of a run folder, in order."""
    paths = sorted(glob.glob(os.path.join(directory, "round_*", "record.json")))
    if not paths:
        raise FileNotFoundError(
            f"{directory} holds no finished round (round_*/record.json)."
        )
    rounds = []
    for path in paths:
        with open(path) as handle:
            rounds.append(json.load(handle))
    return rounds


def with_branches(directory: str, rounds: list[dict]) -> list[dict]:
    """The rounds with the run's branch results joined in: controls run later
    (``keras-lottery branch``) become extra ``baselines`` (named by their kind,
    ``<kind>_branch`` when IMP trained that control itself, ``_s<seed>`` for
    seeds other than 0), and instability analyses add an ``instability`` entry
    (``{split: {mean, std, ...}}``)."""
    from keras_lottery.branches import load_branches, load_instability

    branches, analyses = load_branches(directory), load_instability(directory)
    out = []
    for record in rounds:
        record = dict(record, baselines=dict(record.get("baselines", {})))
        own = set(record["baselines"])
        for branch in branches.get(record["round"], []):
            name = branch["kind"] + ("_branch" if branch["kind"] in own else "")
            name += f"_s{branch['seed']}" if branch["seed"] else ""
            record["baselines"][name] = branch["training"]
        if record["round"] in analyses:
            record["instability"] = analyses[record["round"]]["summary"]
        out.append(record)
    return out


def write_report(directory: str, metric: str = "accuracy") -> str:
    """Writes ``report.txt`` and the plot into ``directory``; returns the table.
    Branch results (controls, instability) join the IMP rounds'."""
    rounds = with_branches(directory, load_rounds(directory))
    table = format_round_table(rounds, metric)
    atomic_write_text(os.path.join(directory, "report.txt"), table + "\n")
    plot(rounds, os.path.join(directory, PLOT_NAME), metric)
    from keras_lottery.branches import load_instability

    analyses = load_instability(directory)
    if analyses:
        from keras_lottery.plots import plot_run_instability

        threshold = next(iter(analyses.values()))["threshold"]
        plot_run_instability(
            analyses, os.path.join(directory, INSTABILITY_PLOT), threshold
        )
    return table


def plot(rounds: list[dict], path: str, metric: str = "accuracy") -> None:
    """Test ``metric`` vs. percent of weights remaining, one line per method."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    remaining = [100 * r["fraction_remaining"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(
        remaining,
        [_metric(r["ticket"], metric) for r in rounds],
        "o-",
        label="ticket (IMP)",
    )
    controls = sorted({name for r in rounds for name in r.get("baselines", {})})
    for name in controls:
        points = [
            (x, _metric(r["baselines"].get(name), metric))
            for x, r in zip(remaining, rounds, strict=True)
            if name in r["baselines"]
        ]
        ax.plot(*zip(*points, strict=True), "s--", label=name.replace("_", " "))
    dense = _metric(rounds[0]["ticket"], metric)
    if dense is not None:
        ax.axhline(dense, color="gray", linestyle=":", linewidth=1, label="dense")
    ax.set_xscale("log")
    ticks = [t for t in _TICKS if min(remaining) * 0.999 <= t <= max(remaining) * 1.001]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel(f"test {metric}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
