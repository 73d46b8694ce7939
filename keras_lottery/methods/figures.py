"""The report figures of the methods' run folders: IMP's accuracy vs. weights
remaining, Continuous Sparsification's search.

Example:

>>> plot_rounds(summary["rounds"], "accuracy_vs_weights.png")
>>> plot_search(summary["search"], "cs_search.png")
"""

from __future__ import annotations

from keras_lottery.figures import pyplot, save_figure, weights_remaining_axis
from keras_lottery.training import metric_of


def plot_rounds(rounds: list[dict], path: str, metric: str = "accuracy") -> None:
    """Test ``metric`` vs. percent of weights remaining, one line per method."""
    plt = pyplot()
    remaining = [100 * r["fraction_remaining"] for r in rounds]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(
        remaining,
        [metric_of(r["ticket"], metric) for r in rounds],
        "o-",
        label="ticket (IMP)",
    )
    controls = sorted({name for r in rounds for name in r.get("baselines", {})})
    for name in controls:
        points = [
            (x, metric_of(r["baselines"].get(name), metric))
            for x, r in zip(remaining, rounds, strict=True)
            if name in r["baselines"]
        ]
        ax.plot(*zip(*points, strict=True), "s--", label=name.replace("_", " "))
    dense = metric_of(rounds[0]["ticket"], metric)
    if dense is not None:
        ax.axhline(dense, color="gray", linestyle=":", linewidth=1, label="dense")
    weights_remaining_axis(ax, remaining)
    ax.set_ylabel(f"test {metric}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_search(search: list[dict], path: str) -> None:
    """Share of soft-masked weights with s > 0 and validation accuracy per epoch
    over the search rounds (dotted lines separate the rounds)."""
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
