"""Figure helpers shared by every plot of the library: matplotlib without a
display, PNGs written atomically, the log axis of weights remaining.

Example:

>>> plt = pyplot()
>>> fig, ax = plt.subplots()
>>> weights_remaining_axis(ax, [100, 51.2, 10.7])
>>> save_figure(fig, "accuracy_vs_weights.png")
"""

from __future__ import annotations

import io
import math

from keras_lottery._io import atomic_write_bytes


def pyplot():
    """matplotlib's pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Writes ``fig`` as a PNG atomically and closes it."""
    plt = pyplot()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


#: Ticks closer than this share of the log axis's span share one label.
_MIN_GAP = 0.045
#: At most this many labels; more points are thinned evenly.
_MAX_TICKS = 14


def weights_remaining_axis(ax, percents) -> None:
    """A log x axis of percent weights remaining, dense networks on the left,
    labelled at the plotted points' own values (100, 80, 64, 51.2, ...), so
    every point's sparsity can be read off; values closer than 4.5% of the
    axis width share a label and long series are thinned to 14 labels.

    >>> weights_remaining_axis(ax, [100, 80, 64, 25.6])   # ticks 100 80 64 25.6
    """
    ax.set_xscale("log")
    ticks = point_ticks(percents)
    if ticks:
        ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
        if len(ticks) > 8:
            ax.tick_params(axis="x", labelrotation=45)
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")


def point_ticks(percents) -> list[float]:
    """The tick positions :func:`weights_remaining_axis` uses: the distinct
    values of ``percents``, largest first, near-duplicates merged, thinned to
    at most ``_MAX_TICKS`` (the smallest value always kept).

    >>> point_ticks([100, 80, 64, 63.9, 25.6])
    [100, 80, 64, 25.6]
    """
    values = sorted({float(p) for p in percents if p and p > 0}, reverse=True)
    if not values:
        return []
    gap = max(math.log(1.01), _MIN_GAP * math.log(values[0] / values[-1]))
    ticks = []
    for value in values:
        if not ticks or math.log(ticks[-1] / value) >= gap:
            ticks.append(value)
    if len(ticks) > 1:  # the sparsest point keeps its label
        ticks[-1] = values[-1]
    if len(ticks) > _MAX_TICKS:
        step = -(-(len(ticks) - 1) // (_MAX_TICKS - 1))
        ticks = ticks[:-1:step] + ticks[-1:]
    ticks = [round(t, 9) for t in ticks]
    return [int(t) if t == int(t) else t for t in ticks]
