"""Reports of run folders.

IMP runs: the round table and a plot of test accuracy vs. weights remaining (log x
axis) for the ticket and its controls; branch results (controls run later,
instability analyses) join the table, and analyzed rounds get
``instability_vs_weights.png``. Continuous Sparsification runs: a table of
the search rounds and the ticket, and a plot of the share of weights with s > 0
and the validation accuracy over the search.

Example:

>>> print(write_report("runs/imp_3f2a9c1d0b7e"))
"""

from __future__ import annotations

import glob
import json
import os

from keras_lottery._io import atomic_write_text
from keras_lottery.imp import _metric, format_round_table

PLOT_NAME = "accuracy_vs_weights.png"
CS_PLOT_NAME = "cs_search.png"
INSTABILITY_PLOT = "instability_vs_weights.png"


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


def is_cs_run(directory: str) -> bool:
    return bool(glob.glob(os.path.join(directory, "search_*", "record.json")))


def summary(directory: str) -> dict:
    """What ``result.json`` holds besides the config: the IMP round records, or
    the CS search rounds and ticket record."""
    if not is_cs_run(directory):
        return {"method": "imp", "rounds": load_rounds(directory)}
    search, ticket = load_cs(directory)
    return {"method": "cs", "search": search, "ticket": ticket}


def load_cs(directory: str) -> tuple[list[dict], dict | None]:
    """The search rounds' records and the ticket record (``None`` until the
    ticket is trained) of a CS run folder."""
    search = []
    for path in sorted(glob.glob(os.path.join(directory, "search_*", "record.json"))):
        with open(path) as handle:
            search.append(json.load(handle))
    ticket_path = os.path.join(directory, "ticket", "record.json")
    ticket = None
    if os.path.exists(ticket_path):
        with open(ticket_path) as handle:
            ticket = json.load(handle)
    return search, ticket


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
    if is_cs_run(directory):
        return _write_cs_report(directory)
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
    from keras_lottery.plots import pyplot, save_figure, weights_remaining_axis

    plt = pyplot()
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
    weights_remaining_axis(ax, remaining)
    ax.set_ylabel(f"test {metric}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, path)


# --------------------------------------------------------------------------- CS


def format_cs_table(search: list[dict], ticket: dict | None) -> str:
    """Search rounds and ticket training: remaining weights, accuracy, time."""
    header = ["phase", "epochs", "beta", "remaining", "val accuracy", "test accuracy"]
    header.append("seconds")
    rows = []
    for record in search:
        training = record["training"]
        rows.append(
            [
                f"search {record['round']}",
                str(training["epochs"]),
                f"{record['final_temperature']:.1f}",
                f"{100 * record['fraction_remaining']:.2f}%",
                _fmt(training["final"].get("val_accuracy")),
                _fmt((training.get("test") or {}).get("accuracy")),
                f"{training['wall_time']:.1f}",
            ]
        )
    if ticket is not None:
        meta = ticket["ticket"]
        phases = [("ticket", ticket["ticket_training"])]
        phases += list(ticket.get("baselines", {}).items())
        for name, training in phases:
            rows.append(
                [
                    name,
                    str(training["epochs"]),
                    "-",
                    f"{100 * (1 - meta['sparsity_in_scope']):.2f}%",
                    _fmt(training["final"].get("val_accuracy")),
                    _fmt((training.get("test") or {}).get("accuracy")),
                    f"{training['wall_time']:.1f}",
                ]
            )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows
    ]
    if ticket is not None:
        meta = ticket["ticket"]
        lines.append(
            f"ticket ({meta['mode']}): {100 * (1 - meta['sparsity_in_scope']):.2f}% of "
            f"the soft-masked weights and {100 * (1 - meta['sparsity']):.2f}% of all "
            f"masked weights remain; {ticket['epochs']['total']} epochs in all "
            f"({ticket['epochs']['search']} search + {ticket['epochs']['ticket']} "
            "ticket)"
        )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _write_cs_report(directory: str) -> str:
    search, ticket = load_cs(directory)
    table = format_cs_table(search, ticket)
    atomic_write_text(os.path.join(directory, "report.txt"), table + "\n")
    plot_cs(search, os.path.join(directory, CS_PLOT_NAME))
    return table


def plot_cs(search: list[dict], path: str) -> None:
    """Share of soft-masked weights with s > 0 and validation accuracy per epoch
    over the search rounds (dotted lines separate the rounds)."""
    from keras_lottery.plots import pyplot, save_figure

    plt = pyplot()
    remaining, accuracy, bounds = [], [], []
    for record in search:
        history = record["training"]["history"]
        remaining += [100 * v for v in history.get("mask_remaining", [])]
        accuracy += history.get("val_accuracy", [])
        bounds.append(len(remaining))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    epochs = range(1, len(remaining) + 1)
    ax.plot(epochs, remaining, "-", color="C0", label="weights with s > 0")
    ax.set_xlabel("search epoch")
    ax.set_ylabel("soft-masked weights with s > 0 (%)", color="C0")
    for bound in bounds[:-1]:
        ax.axvline(bound + 0.5, color="gray", linestyle=":", linewidth=1)
    if accuracy:
        twin = ax.twinx()
        twin.plot(range(1, len(accuracy) + 1), accuracy, "-", color="C1")
        twin.set_ylabel("validation accuracy", color="C1")
    ax.grid(True, alpha=0.3)
    save_figure(fig, path)
