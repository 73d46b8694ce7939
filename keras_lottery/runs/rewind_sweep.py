"""Rewinding sweep: IMP to one sparsity with several rewind points ``k``.

For each ``k`` the sweep runs (or resumes, or reuses) the IMP run of the config
with ``pruning.rewind = k`` (its own hash-named folder, via the runner), then
at round ``N`` reports the ticket's test accuracy against the dense network's
("matching" = at most ``stability.matching_tolerance`` below it), the
instability of the subnetwork at ``k`` (a branch of that run) and the
random-reinitialization and random-pruning controls (from the run's records,
or trained as branches when the config did not ask for them).

The dense round 0 does not depend on ``k``, so it is trained once: the first
run also saves the state at every other ``k`` and the other run folders are
started from it (``sharing.seed_dense_round``; ``share_dense=False`` turns this
off). Results are identical to separate runs.

The sweep folder ``<out>/sweep_<hash>`` (hash of the config without
``pruning.rewind``, the rewind points and the round) holds ``sweep.json``,
``sweep.txt`` (the table) and three plots: ``accuracy_vs_rewind.png``,
``instability_vs_rewind.png`` and ``interpolation_curves.png``.

Example:

>>> config = load_config("configs/lenet_mnist.yaml", ["pruning.rounds=7"])
>>> folder = rewind_sweep(config, ["0", "100it", "500it"], round=7, out="runs")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Sequence

from keras_lottery import paths
from keras_lottery._io import atomic_write_json, atomic_write_text
from keras_lottery._messages import print_msg
from keras_lottery.config import RunConfig
from keras_lottery.methods import imp
from keras_lottery.runs import branches, plots, runner, sharing
from keras_lottery.steps import Step
from keras_lottery.training import metric_of

#: The controls the sweep table shows (Frankle et al.'s rewinding figures);
#: trained as branches when the runs did not train them.
TABLE_CONTROLS = ("random_reinit", "random_prune")


def parse_rewinds(rewinds) -> list[Step]:
    """``"0,100it,2ep"`` or a list of steps -> distinct :class:`Step`s, in order."""
    if isinstance(rewinds, str):
        rewinds = [r for r in rewinds.split(",") if r.strip()]
    steps = [Step.parse(r) for r in rewinds]
    if not steps:
        raise ValueError("Give at least one rewind point, e.g. '0,100it,500it'.")
    duplicates = sorted({str(s) for s in steps if steps.count(s) > 1})
    if duplicates:
        raise ValueError(f"Rewind points repeat: {duplicates}.")
    return steps


def sweep_name(config: RunConfig, steps: Sequence[Step], round: int) -> str:
    """``sweep_`` + 12 hex digits of the config (without ``pruning.rewind``),
    the rewind points and the round."""
    identity = config.hashed_fields()
    pruning = dict(identity.get("pruning", {}))
    pruning.pop("rewind", None)
    identity = {**identity, "pruning": pruning}
    canonical = json.dumps(
        {"config": identity, "rewinds": [str(s) for s in steps], "round": round},
        sort_keys=True,
        default=str,
    )
    return "sweep_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def with_rewind(config: RunConfig, step: Step) -> RunConfig:
    return dataclasses.replace(
        config, pruning=dataclasses.replace(config.pruning, rewind=str(step))
    )


def rewind_sweep(
    config: RunConfig,
    rewinds,
    round: int,
    out: str = "runs",
    *,
    share_dense: bool = True,
    verbose: int = 1,
) -> str:
    """Runs (or resumes) the sweep and returns its folder. Stability settings
    (pairs, points, threshold, ...) come from ``config.stability``."""
    steps = parse_rewinds(rewinds)
    if isinstance(round, bool) or not isinstance(round, int) or round < 0:
        raise ValueError(f"round must be an int >= 0; got {round!r}.")
    p = config.pruning
    available = imp.rounds_for(p.fraction, p.rounds, p.target_sparsity)
    if round > available:
        raise ValueError(
            f"round {round} is beyond the config's {available} pruning rounds: "
            f"set pruning.rounds >= {round} (e.g. --set pruning.rounds={round})."
        )
    configs = [with_rewind(config, step) for step in steps]
    run_dirs = _run_imp(configs, steps, out, share_dense, verbose)
    rows = []
    for step, run_dir in zip(steps, run_dirs, strict=True):
        rows.append(_row(config, step, run_dir, round, verbose))
    directory = paths.run_dir(out, sweep_name(config, steps, round))
    _write(directory, config, steps, round, rows)
    return directory


def _run_imp(configs, steps, out, share_dense, verbose) -> list[str]:
    run_dirs = [runner.run_dir_for(c, out) for c in configs]
    for i, config in enumerate(configs):
        extra = []
        if share_dense and not sharing.has_dense_round(run_dirs[i]):
            for donor in run_dirs[:i]:
                if sharing.seed_dense_round(donor, config, out):
                    if verbose:
                        print_msg(
                            f"[keras_lottery] {run_dirs[i]}: dense round 0 "
                            f"shared from {donor}"
                        )
                    break
            if not sharing.has_dense_round(run_dirs[i]):
                extra = [
                    str(steps[j])
                    for j in range(i + 1, len(configs))
                    if not sharing.has_dense_round(run_dirs[j])
                ]
        runner.run(config, out=out, verbose=verbose, extra_rewinds=extra)
    return run_dirs


def _row(config, step, run_dir, round, verbose) -> dict:
    rounds = {r["round"]: r for r in imp.summarize(run_dir)["rounds"]}
    record, dense = rounds[round], rounds[0]
    ticket = metric_of(record["ticket"], "accuracy")
    dense_accuracy = metric_of(dense["ticket"], "accuracy")
    tolerance = config.stability.matching_tolerance
    controls = {}
    for kind in TABLE_CONTROLS if round >= 1 else ():
        if kind in record.get("baselines", {}):
            controls[kind] = metric_of(record["baselines"][kind], "accuracy")
        else:
            branch = branches.run_branch(run_dir, round, kind, verbose=verbose)
            controls[kind] = metric_of(branch["training"], "accuracy")
    settings = dataclasses.asdict(config.stability)
    analysis = branches.run_instability(run_dir, round, verbose=verbose, **settings)
    dense_analysis = None
    if config.stability.sweep_dense and round > 0:
        dense_analysis = branches.run_instability(
            run_dir, 0, verbose=verbose, **settings
        )
    return {
        "rewind": str(step),
        "rewind_iterations": analysis["start_step"],
        "run_dir": os.path.abspath(run_dir),
        "round": round,
        "fraction_remaining": record["fraction_remaining"],
        "ticket_accuracy": ticket,
        "dense_accuracy": dense_accuracy,
        "matching_tolerance": tolerance,
        "matching": (
            None
            if ticket is None or dense_accuracy is None
            else bool(ticket >= dense_accuracy - tolerance)
        ),
        "random_reinit_accuracy": controls.get("random_reinit"),
        "random_prune_accuracy": controls.get("random_prune"),
        "instability": analysis["summary"],
        "mean_curves": analysis["mean_curves"],
        "pairs": len(analysis["pairs"]),
        "dense_instability": dense_analysis and dense_analysis["summary"],
    }


def format_sweep_table(rows: list[dict]) -> str:
    """k | remaining | ticket / dense accuracy | matching | instability | controls."""
    header = [
        "k",
        "remaining",
        "ticket acc",
        "dense acc",
        "matching",
        "instability test",
        "instability train",
        "random reinit",
        "random prune",
    ]
    dense = any(r.get("dense_instability") for r in rows)
    if dense:
        header.append("dense instability test")
    lines = []
    for r in rows:
        lines.append(
            [
                r["rewind"],
                f"{100 * r['fraction_remaining']:.2f}%",
                _fmt(r["ticket_accuracy"]),
                _fmt(r["dense_accuracy"]),
                {True: "yes", False: "no", None: "-"}[r["matching"]],
                _fmt_barrier(r["instability"]["test"]),
                _fmt_barrier(r["instability"]["train"]),
                _fmt(r["random_reinit_accuracy"]),
                _fmt(r["random_prune_accuracy"]),
            ]
            + (
                [_fmt_barrier(r["dense_instability"]["test"])]
                if r.get("dense_instability")
                else ["-"] * dense
            )
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)
    ]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    out += [
        "  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True))
        for line in lines
    ]
    return "\n".join(out)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_barrier(stats) -> str:
    mark = "" if stats["stable"] else " *"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f} pp{mark}"


def _write(directory, config, steps, round, rows) -> None:
    table = format_sweep_table(rows)
    threshold = config.stability.threshold
    note = (
        f"instability: error barrier, mean ± std over pairs; * = not stable "
        f"(mean >= {100 * threshold:g} pp). matching: ticket accuracy at most "
        f"{100 * config.stability.matching_tolerance:g} pp below dense."
    )
    atomic_write_json(
        paths.sweep_json(directory),
        {
            "config": config.to_dict(),
            "rewinds": [str(s) for s in steps],
            "round": round,
            "settings": dataclasses.asdict(config.stability),
            "rows": rows,
        },
    )
    atomic_write_text(paths.sweep_text(directory), f"{table}\n\n{note}\n")
    plots.plot_sweep_accuracy(
        rows, paths.sweep_plot(directory, paths.REWIND_ACCURACY_PLOT)
    )
    plots.plot_sweep_instability(
        rows, paths.sweep_plot(directory, paths.REWIND_INSTABILITY_PLOT), threshold
    )
    plots.plot_sweep_curves(rows, paths.sweep_plot(directory, paths.REWIND_CURVES_PLOT))
