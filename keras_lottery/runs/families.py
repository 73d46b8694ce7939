"""The family report of a grid sweep: one row per setting (its tickets as
points), mean and standard deviation over seeds when settings differ only in
``seed``, and figures (``sweep.{json,txt,png}``, ``replicates.png``).

Example:

>>> write_sweep_report("runs/sweep_1a2b3c4d5e6f", settings)
"""

from __future__ import annotations

import json
import os

from keras_lottery import paths
from keras_lottery._io import atomic_write_json, atomic_write_text
from keras_lottery.figures import pyplot, save_figure, weights_remaining_axis
from keras_lottery.methods import registry
from keras_lottery.runs.report import with_branches


def collect(settings) -> list[dict]:
    """One row per setting: the run folder and, once finished, its points
    (weights remaining, test accuracy of the ticket and of each control) and
    epochs. Controls trained later with ``keras-lottery branch`` join their
    round's controls (named as in :func:`keras_lottery.runs.report.with_branches`)."""
    rows = []
    for setting in settings:
        row = {
            "setting": setting.label,
            "group": ", ".join(
                o for o in setting.overrides if not o.startswith("seed=")
            )
            or "base",
            "run_dir": setting.run_dir,
            "points": [],
        }
        path = paths.result(setting.run_dir)
        if os.path.exists(path):
            with open(path) as handle:
                result = json.load(handle)
            row.update(_points(result, setting.run_dir))
        rows.append(row)
    return rows


#: What a sweep records of each point of a run (``sweep.json``).
POINT_KEYS = ("weights_remaining", "weights_remaining_in_scope", "accuracy", "controls")


def _points(result: dict, run_dir: str) -> dict:
    """The method, epochs spent and points of a finished run (``result.json``),
    with branches joined to IMP's rounds."""
    if "rounds" in result:
        result = dict(result, rounds=with_branches(run_dir, result["rounds"]))
    points = registry.get(result["method"]).points(result)
    return {
        "method": result["method"],
        "epochs": points[-1]["epochs"] if points else 0,
        "points": [{k: p[k] for k in POINT_KEYS if k in p} for p in points],
    }


def write_sweep_report(directory: str, settings) -> str:
    """Writes ``sweep.json``, ``sweep.txt`` and ``sweep.png``; when settings differ
    in ``seed``, also ``replicates.{json,txt,png}`` (mean and standard deviation
    over the seeds of each setting). Returns the table(s)."""
    rows = collect(settings)
    groups = replicates(rows)
    atomic_write_json(
        paths.sweep_json(directory), {"settings": rows, "replicates": groups}
    )
    table = format_sweep_table(rows)
    if any(group["seeds"] > 1 for group in groups):
        table += "\n\n" + format_replicates(groups)
        if any(group["points"] for group in groups):
            plot_replicates(groups, paths.sweep_plot(directory, paths.REPLICATES_PLOT))
    atomic_write_text(paths.sweep_text(directory), table + "\n")
    if any(row["points"] for row in rows):
        plot_family(rows, paths.sweep_plot(directory, paths.SWEEP_PLOT))
    return table


def replicates(rows) -> list[dict]:
    """Finished rows grouped by their non-seed overrides: per point (IMP round,
    or the CS ticket), mean / std / n of the weights remaining, the ticket's
    accuracy and each control's accuracy over the seeds."""
    by_group = {}
    for row in rows:
        if row["points"]:
            by_group.setdefault(row["group"], []).append(row)
    groups = []
    for name, members in by_group.items():
        length = min(len(m["points"]) for m in members)
        points = []
        for i in range(length):
            at = [m["points"][i] for m in members]
            controls = sorted({c for p in at for c in p.get("controls", {})})
            points.append(
                {
                    "weights_remaining": _stats([p["weights_remaining"] for p in at]),
                    "accuracy": _stats([p["accuracy"] for p in at]),
                    "controls": {
                        c: _stats([p.get("controls", {}).get(c) for p in at])
                        for c in controls
                    },
                }
            )
        groups.append(
            {
                "group": name,
                "method": members[0].get("method"),
                "seeds": len(members),
                "epochs": _stats([m.get("epochs") for m in members]),
                "points": points,
            }
        )
    return groups


def _stats(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    mean = sum(values) / len(values)
    var = (
        sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        if len(values) > 1
        else 0.0
    )
    return {"mean": mean, "std": var**0.5, "n": len(values)}


def _mean_std(stats, scale=1.0, digits=4, suffix="", seeds=None) -> str:
    """``mean ± std``, with ``(n=K)`` when fewer than ``seeds`` values exist."""
    if stats["mean"] is None:
        return "-"
    text = (
        f"{scale * stats['mean']:.{digits}f}{suffix} ± "
        f"{scale * stats['std']:.{digits}f}{suffix}"
    )
    if seeds is not None and stats["n"] < seeds:
        text += f" (n={stats['n']})"
    return text


def format_replicates(groups) -> str:
    """One table per group: mean ± std (sample standard deviation) over seeds."""
    blocks = []
    for group in groups:
        controls = sorted({c for p in group["points"] for c in p["controls"]})
        header = ["point", "weights remaining", "ticket accuracy"]
        header += [f"{c} accuracy" for c in controls]
        lines = []
        for i, point in enumerate(group["points"]):
            label = "ticket" if group["method"] == "cs" else f"round {i}"
            lines.append(
                [
                    label,
                    _mean_std(point["weights_remaining"], 100, 2, "%"),
                    _mean_std(point["accuracy"]),
                ]
                + [
                    _mean_std(point["controls"][c], seeds=group["seeds"])
                    if c in point["controls"]
                    else "-"
                    for c in controls
                ]
            )
        widths = [
            max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)
        ]
        out = [
            f"{group['group']}: mean ± std over {group['seeds']} seed(s)",
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        ]
        out += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines
        ]
        blocks.append("\n".join(out))
    return "\n\n".join(blocks)


def plot_replicates(groups, path: str) -> None:
    """Mean test accuracy vs. weights remaining with +-1 std bars, per group:
    the ticket (solid) and its controls (dashed)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = []
    for g, group in enumerate(groups):
        x = [100 * p["weights_remaining"]["mean"] for p in group["points"]]
        xs += x
        prefix = "" if len(groups) == 1 else f"{group['group']}: "
        series = [("ticket", [p["accuracy"] for p in group["points"]], "o-")]
        controls = sorted({c for p in group["points"] for c in p["controls"]})
        for c in controls:
            series.append(
                (
                    c.replace("_", " "),
                    [p["controls"].get(c) for p in group["points"]],
                    "s--",
                )
            )
        for s_index, (label, stats, style) in enumerate(series):
            keep = [i for i, st in enumerate(stats) if st and st["mean"] is not None]
            if not keep:
                continue
            ax.errorbar(
                [x[i] for i in keep],
                [stats[i]["mean"] for i in keep],
                yerr=[stats[i]["std"] for i in keep],
                fmt=style,
                capsize=2,
                color=f"C{(g * 3 + s_index) % 10}",
                label=f"{prefix}{label} (n={group['seeds']})",
            )
    weights_remaining_axis(ax, xs)
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path)


def format_sweep_table(rows) -> str:
    header = ["setting", "method", "weights remaining", "test accuracy", "epochs"]
    lines = []
    for row in rows:
        last = row["points"][-1] if row["points"] else None
        lines.append(
            [
                row["setting"],
                row.get("method", "-"),
                "-" if last is None else f"{100 * last['weights_remaining']:.2f}%",
                "-"
                if last is None or last["accuracy"] is None
                else f"{last['accuracy']:.4f}",
                str(row.get("epochs", "-")) if last is not None else "not finished",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in lines)) for i, h in enumerate(header)]
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    out += [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines
    ]
    return "\n".join(out)


def plot_family(rows, path: str) -> None:
    """Test accuracy vs. weights remaining (log x): a point per CS ticket, a
    curve per IMP run."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    xs = []
    for row in rows:
        points = [p for p in row["points"] if p["accuracy"] is not None]
        if not points:
            continue
        x = [100 * p["weights_remaining"] for p in points]
        y = [p["accuracy"] for p in points]
        xs += x
        style = "o-" if len(points) > 1 else "s"
        ax.plot(x, y, style, label=row["setting"])
    weights_remaining_axis(ax, xs)
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path)
