"""Records as text: the round table of IMP, the phase table of Continuous
Sparsification, and the one-line progress messages of both.

Example:

>>> print(format_round_table(summary["rounds"]))
>>> print(format_cs_table(summary["search"], summary["ticket"]))
"""

from __future__ import annotations

from collections.abc import Mapping

from keras_lottery.training import metric_of


def format_round_table(rounds: list[Mapping], metric: str = "accuracy") -> str:
    """A text table of round records (dicts as saved in ``record.json``)."""
    controls = sorted({name for r in rounds for name in r.get("baselines", {})})
    header = ["round", "remaining", f"ticket {metric}"] + [
        f"{c} {metric}" for c in controls
    ]
    header += ["epochs", "seconds"]
    stability = any("instability" in r for r in rounds)
    if stability:
        header += ["instability (test)"]
    rows = []
    for r in rounds:
        row = [
            str(r["round"]),
            f"{100 * r['fraction_remaining']:.2f}%",
            _fmt(metric_of(r["ticket"], metric)),
        ]
        baselines = r.get("baselines", {})
        row += [_fmt(metric_of(baselines.get(c), metric)) for c in controls]
        row += [str(r["ticket"]["epochs"]), f"{r['ticket']['wall_time']:.1f}"]
        if stability:
            row.append(_fmt_instability(r.get("instability")))
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    ]
    return "\n".join(lines)


def _fmt_instability(summary) -> str:
    test = (summary or {}).get("test")
    if not test:
        return "-"
    return f"{100 * test['mean']:.2f} ± {100 * test['std']:.2f} pp"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def summary_line(record: Mapping, metric: str = "accuracy") -> str:
    """One line per round for progress output."""
    parts = [
        f"[keras_lottery] round {record['round']}",
        f"{100 * record['fraction_remaining']:.2f}% weights remaining",
        f"ticket {metric} {_fmt(metric_of(record['ticket'], metric))}",
    ]
    for name, training in record.get("baselines", {}).items():
        parts.append(f"{name} {_fmt(metric_of(training, metric))}")
    parts.append(
        f"{record['ticket']['epochs']} epochs, {record['ticket']['wall_time']:.1f}s"
    )
    return " | ".join(parts)


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


def _accuracy(training: Mapping | None):
    if not training:
        return None
    for source, key in (("test", "accuracy"), ("final", "val_accuracy")):
        value = (training.get(source) or {}).get(key)
        if value is not None:
            return value
    return None


def search_line(record: Mapping) -> str:
    acc = _accuracy(record["training"])
    return (
        f"[keras_lottery] CS search round {record['round']} | "
        f"{100 * record['fraction_remaining']:.2f}% of soft-masked weights have s > 0"
        f" | beta {record['final_temperature']:.1f} | accuracy "
        f"{'-' if acc is None else f'{acc:.4f}'} | {record['training']['epochs']} "
        f"epochs, {record['training']['wall_time']:.1f}s"
    )


def ticket_line(result: Mapping) -> str:
    acc = _accuracy(result["ticket_training"])
    ticket = result["ticket"]
    parts = [
        f"[keras_lottery] CS ticket ({ticket['mode']}) | "
        f"{100 * (1 - ticket['sparsity_in_scope']):.2f}% of soft-masked weights, "
        f"{100 * (1 - ticket['sparsity']):.2f}% of all masked weights remain",
        f"accuracy {'-' if acc is None else f'{acc:.4f}'}",
    ]
    for name, training in result["baselines"].items():
        value = _accuracy(training)
        parts.append(f"{name} {'-' if value is None else f'{value:.4f}'}")
    parts.append(f"{result['epochs']['total']} epochs in all")
    return " | ".join(parts)
