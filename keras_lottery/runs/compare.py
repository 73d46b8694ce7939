"""Comparing finished runs: IMP curves, Continuous Sparsification tickets and
elastic tickets (``keras-lottery elastic`` folders: one point per trained arm,
its epochs those of the target's training from ``k``).

Every run becomes a curve of points (weights remaining, test accuracy, training
epochs spent so far). An IMP run contributes one point per round, its epochs
summed over the rounds up to that one (controls are not counted: they are
checks, not part of the search). A CS run contributes its ticket: the share of
all masked weights that survive, and the epochs of every search round plus the
ticket's training.

The cost comparison answers "how many epochs did each method need to reach this
sparsity": for every CS ticket and every IMP run, the first IMP round with at
most the ticket's weights remaining, its epochs and accuracy, and the ratio of
the ticket's epochs to those.

Example:

>>> text = write_comparison(
...     ["runs/imp_8a4442cc7e2b", "runs/cs_3e9d0bb40e9e"], out="runs/compare"
... )  # comparison.txt, comparison.json and comparison.png in runs/compare
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from keras_lottery import paths
from keras_lottery._io import atomic_write_json, atomic_write_text
from keras_lottery.figures import pyplot, save_figure, weights_remaining_axis
from keras_lottery.methods import registry
from keras_lottery.runs.runner import load_config_of


@dataclass
class Point:
    """One network a run produced."""

    phase: str
    """``round N`` (IMP) or ``ticket`` (CS)."""
    remaining: float
    """Fraction of the masked weights that survive."""
    accuracy: float | None
    """Test accuracy (``None`` when the run had no test set)."""
    epochs: float
    """Training epochs the run had spent when this network was finished."""


@dataclass
class Curve:
    """A run's points, in the order the run produced them."""

    label: str
    method: str
    directory: str
    points: list[Point] = field(default_factory=list)


def load_curve(directory: str, label: str | None = None) -> Curve:
    """The points of a finished (or partly finished) IMP or CS run folder.

    >>> curve = load_curve("runs/imp_8a4442cc7e2b")
    >>> curve.label, curve.points[-1].remaining
    ('IMP, rewind 1ep', 0.107...)
    """
    from keras_lottery.runs import elastic

    if elastic.is_elastic_run(directory):
        spec = elastic.summarize(directory)["spec"]
        points = [
            Point(p["phase"], p["weights_remaining"], p["accuracy"], p["epochs"])
            for p in elastic.points(directory)
        ]
        default = f"E-LTH {spec['source_run']} -> {spec['target']}"
        return Curve(label or default, "elastic", directory, points)
    config = load_config_of(directory)
    method = registry.get(config.method)
    points = [
        Point(p["phase"], p["weights_remaining"], p["accuracy"], float(p["epochs"]))
        for p in method.points(method.summarize(directory))
    ]
    default = f"{method.name.upper()}, rewind {config.method_config.rewind}"
    return Curve(label or default, method.name, directory, points)


def first_reaching(curve: Curve, remaining: float) -> Point | None:
    """The first point of ``curve`` with at most ``remaining`` weights left
    (a relative tolerance of 1e-6 absorbs rounding of the counts)."""
    for point in curve.points:
        if point.remaining <= remaining * (1 + 1e-6):
            return point
    return None


def cost_rows(curves: list[Curve]) -> list[dict]:
    """For each CS ticket and each IMP curve: the IMP point that first reaches
    the ticket's sparsity, and the ratio of the ticket's epochs to its epochs."""
    rows = []
    for cs in (c for c in curves if c.method == "cs"):
        for ticket in cs.points:
            for imp in (c for c in curves if c.method == "imp"):
                match = first_reaching(imp, ticket.remaining)
                rows.append(
                    {
                        "cs": cs.label,
                        "imp": imp.label,
                        "remaining": ticket.remaining,
                        "cs_accuracy": ticket.accuracy,
                        "cs_epochs": ticket.epochs,
                        "imp_phase": match.phase if match else None,
                        "imp_remaining": match.remaining if match else None,
                        "imp_accuracy": match.accuracy if match else None,
                        "imp_epochs": match.epochs if match else None,
                        "epochs_ratio": ticket.epochs / match.epochs if match else None,
                    }
                )
    return rows


def format_comparison(curves: list[Curve]) -> str:
    """A table of every run's points, then the cost rows (if any CS run)."""
    header = ("run", "phase", "remaining", "accuracy", "epochs")
    lines = ["{:<24} {:>9} {:>10} {:>9} {:>7}".format(*header)]
    for curve in curves:
        for point in curve.points:
            lines.append(
                f"{curve.label:<24} {point.phase:>9} {100 * point.remaining:>9.2f}% "
                f"{_fmt(point.accuracy):>9} {point.epochs:>7g}"
            )
    rows = cost_rows(curves)
    if rows:
        lines += ["", "epochs to reach a CS ticket's sparsity:"]
        for row in rows:
            if row["imp_phase"] is None:
                lines.append(
                    f"  {row['cs']} ({100 * row['remaining']:.2f}%, "
                    f"{row['cs_epochs']:g} epochs): {row['imp']} has not reached it"
                )
                continue
            lines.append(
                f"  {row['cs']}: {100 * row['remaining']:.2f}% remaining, accuracy "
                f"{_fmt(row['cs_accuracy'])}, {row['cs_epochs']:g} epochs | "
                f"{row['imp']} {row['imp_phase']}: "
                f"{100 * row['imp_remaining']:.2f}%, accuracy "
                f"{_fmt(row['imp_accuracy'])}, {row['imp_epochs']:g} epochs | "
                f"CS / IMP epochs = {row['epochs_ratio']:.2f}"
            )
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def plot_comparison(curves: list[Curve], path: str) -> None:
    """Test accuracy vs. weights remaining (log x axis): a line per IMP run, a
    star per CS ticket, a diamond per elastic ticket (crosses: its controls)."""
    fig, ax = pyplot().subplots(figsize=(8.0, 4.2))
    shown = []
    for curve in curves:
        points = [p for p in curve.points if p.accuracy is not None]
        xs = [100 * p.remaining for p in points]
        if curve.method == "cs":
            ax.plot(xs, [p.accuracy for p in points], "*", ms=14, label=curve.label)
        elif curve.method == "elastic":  # the ticket a diamond, controls crosses
            for p in points:
                marker, name = ("D", "") if p.phase == "ticket" else ("x", p.phase)
                label = f"{curve.label} {name}".strip()
                ax.plot([100 * p.remaining], [p.accuracy], marker, ms=9, label=label)
        else:
            ax.plot(xs, [p.accuracy for p in points], "o-", label=curve.label)
        shown += xs
    weights_remaining_axis(ax, shown)
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    # Beside the axes, not on them: inside, it covered the CS star (upper right).
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    save_figure(fig, path)


def write_comparison(
    directories: list[str], out: str, labels: list[str] | None = None
) -> str:
    """Compares run folders; writes ``comparison.txt``, ``comparison.json`` and
    ``comparison.png`` into ``out`` (created if needed); returns the table."""
    if not directories:
        raise ValueError("compare needs at least one run folder.")
    if labels is not None and len(labels) != len(directories):
        raise ValueError(
            f"got {len(labels)} labels for {len(directories)} run folders; give "
            "one label per run folder, in the same order, or none."
        )
    curves = [
        load_curve(d, labels[i] if labels else None) for i, d in enumerate(directories)
    ]
    os.makedirs(out, exist_ok=True)
    text = format_comparison(curves)
    data = {"runs": [asdict(c) for c in curves], "cost": cost_rows(curves)}
    atomic_write_text(paths.comparison(out, "txt"), text + "\n")
    atomic_write_json(paths.comparison(out, "json"), data)
    plot_comparison(curves, paths.comparison(out, "png"))
    return text
