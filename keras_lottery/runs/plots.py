"""Plots of stability analyses (PNG, written atomically): interpolation curves
of one analysis, and accuracy / instability / curves across a rewind sweep.

Example:

>>> plot_instability(json.load(open("instability.json")), "instability.png")
"""

from __future__ import annotations

from keras_lottery.figures import pyplot, save_figure, weights_remaining_axis

_SPLITS = {"test": ("tab:blue", "-"), "train": ("tab:orange", "--")}


def plot_instability(summary: dict, path: str, title: str | None = None) -> None:
    """Error (%) vs. interpolation coefficient: the mean over pairs per split,
    shaded from the lowest to the highest pair, with the barrier in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    pairs = len(summary["pairs"])
    for split, curve in summary["mean_curves"].items():
        color, style = _SPLITS.get(split, (None, "-"))
        stats = summary["summary"][split]
        x = curve["alphas"]
        label = (
            f"{split}: instability {100 * stats['mean']:.2f}"
            f" ± {100 * stats['std']:.2f} pp"
        )
        ax.plot(x, [100 * v for v in curve["mean"]], style, color=color, label=label)
        if pairs > 1:
            ax.fill_between(
                x,
                [100 * v for v in curve["min"]],
                [100 * v for v in curve["max"]],
                color=color,
                alpha=0.2,
                linewidth=0,
            )
    ax.set_xlabel("interpolation coefficient a  ((1 - a) W1 + a W2)")
    ax.set_ylabel("error (%)")
    shade = ", band: min-max over pairs" if pairs > 1 else ""
    ax.set_title(
        (title + "\n" if title else "") + f"mean of {pairs} pair(s){shade}",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    save_figure(fig, path)


def plot_sweep_accuracy(rows: list[dict], path: str) -> None:
    """Test accuracy vs. rewind point: ticket, dense, and the controls."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x = list(range(len(rows)))
    series = [
        ("ticket_accuracy", "o-", "ticket (IMP)"),
        ("random_reinit_accuracy", "s--", "random reinit"),
        ("random_prune_accuracy", "^--", "random prune"),
    ]
    for key, style, label in series:
        points = [(i, r[key]) for i, r in zip(x, rows, strict=True) if r.get(key)]
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label)
    dense = [r["dense_accuracy"] for r in rows if r.get("dense_accuracy") is not None]
    if dense:
        ax.axhline(dense[0], color="gray", linestyle=":", label="dense")
        tolerance = rows[0].get("matching_tolerance")
        if tolerance:
            ax.axhspan(
                dense[0] - tolerance,
                dense[0],
                color="gray",
                alpha=0.12,
                label="matching band",
            )
    _rewind_axis(ax, rows)
    ax.set_ylabel("test accuracy")
    remaining = rows[0].get("fraction_remaining")
    if remaining is not None:
        ax.set_title(f"{100 * remaining:.1f}% of weights remaining", fontsize=10)
    ax.legend(fontsize=9)
    save_figure(fig, path)


def plot_sweep_instability(rows: list[dict], path: str, threshold: float) -> None:
    """Instability (mean ± std over pairs) vs. rewind point, per split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series = [("instability", "o", "subnetwork", -0.05)]
    if any(r.get("dense_instability") for r in rows):
        series.append(("dense_instability", "s", "dense", 0.05))
    for key, marker, name, shift in series:
        for offset, split in ((-0.1, "test"), (0.1, "train")):
            color, style = _SPLITS[split]
            points = [
                (i + offset + shift, r[key][split])
                for i, r in enumerate(rows)
                if r.get(key)
            ]
            ax.errorbar(
                [p[0] for p in points],
                [100 * p[1]["mean"] for p in points],
                yerr=[100 * p[1]["std"] for p in points],
                fmt=marker + style,
                color=color,
                mfc="none" if key == "dense_instability" else color,
                capsize=3,
                label=f"{name}, {split}",
            )
    ax.axhline(
        100 * threshold, color="gray", linestyle=":", label="stability threshold"
    )
    _rewind_axis(ax, rows)
    ax.set_ylabel("instability (error barrier, pp)")
    ax.legend(fontsize=9)
    save_figure(fig, path)


def plot_sweep_curves(rows: list[dict], path: str) -> None:
    """Mean interpolation curves (test and train error) for every rewind point."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    for ax, split in zip(axes, ("test", "train"), strict=True):
        for row in rows:
            curve = row["mean_curves"][split]
            ax.plot(
                curve["alphas"],
                [100 * v for v in curve["mean"]],
                label=f"k = {row['rewind']}",
            )
        ax.set_xlabel("interpolation coefficient a")
        ax.set_ylabel(f"{split} error (%)")
        ax.set_title(f"{split} error along the path (mean over pairs)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)


def _rewind_axis(ax, rows) -> None:
    ax.set_xticks(range(len(rows)), [f"k = {r['rewind']}" for r in rows])
    ax.set_xlabel("rewind point")
    ax.grid(True, alpha=0.3)


def plot_run_instability(analyses: dict, path: str, threshold: float) -> None:
    """The analyzed rounds of one run: mean test-error curves per round (left) and
    instability vs. weights remaining (right, mean ± std over pairs)."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rounds = sorted(analyses)
    for r in rounds:
        data = analyses[r]
        curve = data["mean_curves"]["test"]
        left.plot(
            curve["alphas"],
            [100 * v for v in curve["mean"]],
            label=f"round {r} ({100 * data['fraction_remaining']:.1f}%)",
        )
    left.set_xlabel("interpolation coefficient a")
    left.set_ylabel("test error (%)")
    left.set_title("test error along the path (mean over pairs)", fontsize=10)
    left.grid(True, alpha=0.3)
    left.legend(fontsize=8)
    remaining = [100 * analyses[r]["fraction_remaining"] for r in rounds]
    for split in ("test", "train"):
        color, style = _SPLITS[split]
        stats = [analyses[r]["summary"][split] for r in rounds]
        right.errorbar(
            remaining,
            [100 * s["mean"] for s in stats],
            yerr=[100 * s["std"] for s in stats],
            fmt="o" + style,
            color=color,
            capsize=3,
            label=split,
        )
    right.axhline(100 * threshold, color="gray", linestyle=":", label="threshold")
    weights_remaining_axis(right, remaining)
    right.set_ylabel("instability (error barrier, pp)")
    right.set_title(f"k = {analyses[rounds[0]].get('rewind')}", fontsize=10)
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    save_figure(fig, path)
