"""Grid sweeps: one run folder per setting, side by side, and a family report.

Continuous Sparsification finds one ticket per (s0, lambda) setting, and unlike
IMP the settings do not depend on each other, so a family of tickets of
different sparsities can be searched in parallel ("fast parallel ticket search"
in Savarese et al.). A sweep expands a grid of config overrides, runs every
setting as an ordinary run folder (all share ``seed``, hence the same starting
network) in up to ``jobs`` independent processes, and writes a family report.
It works for IMP configs too (e.g. a grid over ``seed``).

Re-running a sweep skips finished settings and resumes interrupted ones (each
run folder is idempotent and resumable).

Layout of ``<out>/sweep_<hash>/``: ``sweep.yaml`` (base config path, overrides,
grid), ``logs/setting_NN.log``, ``sweep.json``, ``sweep.txt`` and
``sweep.png`` (test accuracy vs. weights remaining).

Example (shell):

    keras-lottery sweep configs/cs_resnet20_cifar10.yaml \\
        --grid 'cs.mask_initial_value=[-0.1, 0.0, 0.1]' --jobs 3 --out runs
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from keras_lottery._io import atomic_write_json, atomic_write_text
from keras_lottery.config import ConfigError, RunConfig, load_config


@dataclass(frozen=True)
class Setting:
    """One point of the grid: its overrides, config and run folder."""

    overrides: tuple[str, ...]
    config: RunConfig
    run_dir: str

    @property
    def label(self) -> str:
        return ", ".join(self.overrides) or "base"


def parse_grid(items) -> dict[str, list]:
    """``["key=[v1, v2]", ...]`` (values in YAML) -> ``{key: [v1, v2]}``."""
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"Grid entry {item!r} must look like key=[v1, v2, ...].")
        key, raw = item.split("=", 1)
        values = yaml.safe_load(raw)
        if not isinstance(values, list) or not values:
            raise ConfigError(
                f"Grid entry {item!r}: the values must be a non-empty YAML list, "
                "like cs.mask_initial_value=[-0.1, 0.0, 0.1]."
            )
        if key.strip() in grid:
            raise ConfigError(f"Grid key {key.strip()!r} is given twice.")
        grid[key.strip()] = values
    if not grid:
        raise ConfigError("A sweep needs at least one --grid key=[values].")
    return grid


def expand(config_path, grid: dict, overrides=(), out="runs") -> list[Setting]:
    """Every setting of ``grid`` (Cartesian product, in the given order), each
    validated as a full config before anything runs."""
    keys = list(grid)
    settings = []
    for values in itertools.product(*(grid[k] for k in keys)):
        extra = tuple(
            f"{k}={_yaml_value(v)}" for k, v in zip(keys, values, strict=True)
        )
        config = load_config(config_path, list(overrides) + list(extra))
        settings.append(Setting(extra, config, os.path.join(out, config.hashname())))
    names = [s.run_dir for s in settings]
    if len(set(names)) != len(names):
        raise ConfigError("Two grid settings give the same config; drop duplicates.")
    return settings


def _yaml_value(value) -> str:
    return json.dumps(value)  # JSON scalars and lists are valid YAML


def sweep_dir_for(config_path, grid, overrides, out) -> str:
    base = load_config(config_path, list(overrides))
    canonical = json.dumps(
        {"base": base.non_default(), "grid": grid}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]
    return os.path.join(out, f"sweep_{digest}")


def run_sweep(config_path, grid, overrides=(), out="runs", jobs=1, verbose=1) -> str:
    """Runs every setting of ``grid`` (``jobs`` at a time, each in its own
    process) and writes the family report; returns the sweep folder.

    Raises ``RuntimeError`` naming the settings that failed (their logs are in
    the sweep folder); the finished ones are kept and the report covers them.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1; got {jobs!r}.")
    settings = expand(config_path, grid, overrides, out)
    directory = sweep_dir_for(config_path, grid, overrides, out)
    os.makedirs(os.path.join(directory, "logs"), exist_ok=True)
    atomic_write_text(
        os.path.join(directory, "sweep.yaml"),
        yaml.safe_dump(
            {
                "config": os.fspath(config_path),
                "overrides": list(overrides),
                "grid": grid,
            },
            sort_keys=False,
        ),
    )

    def launch(indexed):
        i, setting = indexed
        return _run_setting(
            config_path, overrides, setting, directory, i, jobs, verbose
        )

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        codes = list(pool.map(launch, enumerate(settings)))
    write_sweep_report(directory, settings)
    failed = [s.label for s, code in zip(settings, codes, strict=True) if code]
    if failed:
        raise RuntimeError(
            f"{len(failed)} sweep setting(s) failed: {failed}; see "
            f"{os.path.join(directory, 'logs')}. Re-run the sweep to resume them."
        )
    return directory


def _run_setting(config_path, overrides, setting, directory, index, jobs, verbose):
    if os.path.exists(os.path.join(setting.run_dir, "result.json")):
        if verbose:
            print(f"[keras_lottery] sweep: {setting.label} already finished")
        return 0
    command = [sys.executable, "-m", "keras_lottery.cli", "run", os.fspath(config_path)]
    for override in list(overrides) + list(setting.overrides):
        command += ["--set", override]
    command += ["--out", os.path.dirname(setting.run_dir) or "."]
    env = dict(os.environ)
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        env.setdefault(name, threads)
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    log = os.path.join(directory, "logs", f"setting_{index:02d}.log")
    if verbose:
        print(f"[keras_lottery] sweep: running {setting.label} (log: {log})")
    with open(log, "ab") as handle:
        code = subprocess.call(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env
        )
    if verbose:
        status = "finished" if code == 0 else f"FAILED (exit {code})"
        print(f"[keras_lottery] sweep: {setting.label} {status}")
    return code


# --------------------------------------------------------------------------- report


def collect(settings) -> list[dict]:
    """One row per setting: the run folder and, once finished, its points
    (weights remaining, test accuracy of the ticket and of each control) and
    epochs. Controls trained later with ``keras-lottery branch`` join their
    round's controls (named as in :func:`keras_lottery.report.with_branches`)."""
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
        path = os.path.join(setting.run_dir, "result.json")
        if os.path.exists(path):
            with open(path) as handle:
                result = json.load(handle)
            row.update(_points(result, setting.run_dir))
        rows.append(row)
    return rows


def _points(result: dict, run_dir: str) -> dict:
    from keras_lottery.imp import _metric
    from keras_lottery.report import with_branches

    if result.get("method") == "cs":
        ticket = result["ticket"]
        meta = ticket["ticket"]
        return {
            "method": "cs",
            "epochs": ticket["epochs"]["total"],
            "points": [
                {
                    "weights_remaining": 1 - meta["sparsity"],
                    "weights_remaining_in_scope": 1 - meta["sparsity_in_scope"],
                    "accuracy": _metric(ticket["ticket_training"], "accuracy"),
                    "controls": {
                        name: _metric(training, "accuracy")
                        for name, training in ticket.get("baselines", {}).items()
                    },
                }
            ],
        }
    rounds = with_branches(run_dir, result["rounds"])
    return {
        "method": "imp",
        "epochs": sum(r["ticket"]["epochs"] for r in rounds),
        "points": [
            {
                "weights_remaining": r["fraction_remaining"],
                "accuracy": _metric(r["ticket"], "accuracy"),
                "controls": {
                    name: _metric(training, "accuracy")
                    for name, training in r.get("baselines", {}).items()
                },
            }
            for r in rounds
        ],
    }


def write_sweep_report(directory: str, settings) -> str:
    """Writes ``sweep.json``, ``sweep.txt`` and ``sweep.png``; when settings differ
    in ``seed``, also ``replicates.{json,txt,png}`` (mean and standard deviation
    over the seeds of each setting). Returns the table(s)."""
    rows = collect(settings)
    groups = replicates(rows)
    atomic_write_json(
        os.path.join(directory, "sweep.json"), {"settings": rows, "replicates": groups}
    )
    table = format_sweep_table(rows)
    if any(group["seeds"] > 1 for group in groups):
        table += "\n\n" + format_replicates(groups)
        if any(group["points"] for group in groups):
            plot_replicates(groups, os.path.join(directory, "replicates.png"))
    atomic_write_text(os.path.join(directory, "sweep.txt"), table + "\n")
    if any(row["points"] for row in rows):
        plot_family(rows, os.path.join(directory, "sweep.png"))
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
    from keras_lottery.plots import pyplot, save_figure, weights_remaining_axis

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
    from keras_lottery.plots import pyplot, save_figure, weights_remaining_axis

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
