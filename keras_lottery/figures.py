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


_TICKS = (100, 50, 25, 10, 5, 2.5, 1, 0.5, 0.25, 0.1, 0.05, 0.01)


def weights_remaining_axis(ax, percents) -> None:
    """A log x axis of percent weights remaining, dense networks on the left,
    ticked at round values inside the plotted range."""
    ax.set_xscale("log")
    if len(percents):
        low, high = min(percents) * 0.999, max(percents) * 1.001
        ticks = [t for t in _TICKS if low <= t <= high]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
