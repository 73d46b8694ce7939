"""``keras-lottery export``: a ticket from a run folder or a ticket file, shipped.

The source is a run folder (IMP: a finished round, the last by default; CS:
its ticket), a ticket file (``Ticket.save``) or a retraining folder of
``keras-lottery retrain`` (``<run>/retrain/round_NNN/retrain_<hash>/seed_S``:
the network as retrained, soft activations and extra skip paths included; the
paths are dense, outside the sparsity, and counted in the size report's source
as ``extra_skip_parameters``). ``weights="trained"`` (the
default) exports the weights after training the ticket, read from the phase's
``trained.npz`` (``round_NNN/trained.npz``, or CS's ``ticket/trained.npz``), or,
when the run's ``retrain`` tweaks transformed the network (soft activation,
extra skips), the network it trained as from the phase's ``transformed.npz``;
``weights="rewind"`` exports the ticket's own weights (the rewind point). A
ticket file outside a run folder holds only its own weights, so it needs
``weights="rewind"``. The size report is printed and written as JSON
(``<out>.size.json`` by default).

Example:

>>> result = export_run("runs/imp_3f2a9c1d0b7e", "ticket.tflite", "litert",
...                     round=3, sparse=True)
"""

from __future__ import annotations

import os

from keras_lottery import paths
from keras_lottery._io import atomic_write_json, load_arrays
from keras_lottery.errors import ConfigError, RunFolderError
from keras_lottery.export import export
from keras_lottery.export._files import check_output
from keras_lottery.methods.checkpoints import (
    CSCheckpoints,
    verified_phases,
    verify_cs_ticket,
)
from keras_lottery.rewind import restore_state
from keras_lottery.ticket import Ticket

WEIGHTS = ("trained", "rewind")


def report_path(out) -> str:
    """Where the size report of an export to ``out`` goes by default."""
    return os.fspath(out).rstrip(os.sep) + ".size.json"


def export_run(
    source,
    out,
    format: str,
    *,
    round: int | None = None,
    weights: str = "trained",
    overwrite: bool = False,
    sparse: bool = False,
    quantize: str | None = None,
    report: str | None = None,
):
    """Exports the ticket of ``source`` (run folder or ticket file) to ``out``
    and writes the size report JSON to ``report`` (default
    :func:`report_path`). Returns the :class:`~keras_lottery.export.ExportResult`.
    Nothing is written if the source, round, weights or outputs are invalid."""
    if weights not in WEIGHTS:
        raise ConfigError(
            f"weights must be one of {', '.join(WEIGHTS)}; got {weights!r}."
        )
    report = report or report_path(out)
    check_output(out, overwrite)
    check_output(report, overwrite)
    if paths.retrain_parts(os.fspath(source)) is not None:
        model, where, metadata = _load_retrained(os.fspath(source), round, weights)
    else:
        ticket_file, trained_file, where = locate_ticket(source, round)
        ticket, model, described = _load(ticket_file, trained_file, weights)
        if weights == "trained":
            model, tweaked = _as_trained(model, trained_file, where)
            described.update(tweaked)
        where = {**where, **described}
        metadata = {**ticket.metadata, "weights": weights}
    result = export(
        model,
        out,
        format,
        overwrite=overwrite,
        sparse=sparse,
        quantize=quantize,
        source=where,
        metadata=metadata,
    )
    atomic_write_json(report, result.to_dict())
    return result


def locate_ticket(source, round: int | None = None):
    """``(ticket file, trained-state file or None, description)`` of a run
    folder's round (IMP; the last finished one by default) or ticket (CS), or
    of a ticket file. Raises :class:`~keras_lottery.errors.RunFolderError` for
    a missing source, a folder with no finished round or ticket, or a round
    that is not finished."""
    source = os.fspath(source)
    if os.path.isfile(source):
        if round is not None:
            raise RunFolderError(
                f"--round applies to run folders; {source} is a ticket file."
            )
        trained = paths.trained(os.path.dirname(os.path.abspath(source)))
        found = trained if os.path.exists(trained) else None
        return source, found, {"ticket": source}
    if not os.path.isdir(source):
        raise RunFolderError(
            f"{source} does not exist: expected a run folder or a ticket file."
        )
    if not os.path.exists(paths.config(source)):
        raise RunFolderError(f"{source} is not a run folder (no config.yaml).")
    rounds = verified_phases(source, paths.ROUND)  # each against its manifest
    if rounds:
        return _imp_round(source, rounds, round)
    if CSCheckpoints(source).ticket_done():
        if round is not None:
            raise RunFolderError(
                f"{source} is a Continuous Sparsification run with one ticket; "
                "--round applies to IMP runs."
            )
        verify_cs_ticket(source)
        directory = paths.cs_ticket_dir(source)
        return (
            paths.cs_ticket(source),
            paths.trained(directory),
            {"run_dir": source, "ticket": paths.cs_ticket(source)},
        )
    raise RunFolderError(
        f"{source} has no finished round yet (no round_NNN/record.json, no "
        "ticket/record.json): nothing to export."
    )


def _imp_round(run_dir, rounds, round):
    if round is None:
        round = rounds[-1]
    elif round not in rounds:
        raise RunFolderError(
            f"Round {round} of {run_dir} is not finished or does not exist; "
            f"finished rounds: {_span(rounds)}."
        )
    ticket = paths.round_ticket(run_dir, round)
    return (
        ticket,
        paths.round_trained(run_dir, round),
        {"run_dir": run_dir, "round": round, "ticket": ticket},
    )


def _span(rounds) -> str:
    return str(rounds[0]) if len(rounds) == 1 else f"{rounds[0]}-{rounds[-1]}"


def _load_retrained(directory, round, weights):
    """The retrained network of a ``keras-lottery retrain`` folder, where it
    came from, and the sparse-npz metadata."""
    from keras_lottery.runs.retrain import load_retrained
    from keras_lottery.tweaks.skips import extra_skip_parameters

    if round is not None:
        raise RunFolderError(
            f"--round applies to run folders; {directory} is one retraining."
        )
    if weights != "trained":
        raise ConfigError(
            f"{directory} holds a retrained network only: export it with "
            "weights='trained' (--weights rewind applies to run folders and "
            "ticket files)."
        )
    model, record = load_retrained(directory)
    run_dir = paths.retrain_parts(directory)[0]
    ticket = Ticket.load(paths.round_ticket(run_dir, record["round"]))
    where = {
        "run_dir": run_dir,
        "round": record["round"],
        "retrain": directory,
        "tweaks": list(record["settings"]["tweaks"]),
        "label": record.get("label"),
        "weights": "trained",
        "extra_skip_parameters": extra_skip_parameters(model),
    }
    metadata = {**ticket.metadata, "weights": "trained", "retrain": record["settings"]}
    return model, where, metadata


def _as_trained(model, trained_file, where):
    """``model`` as its phase trained it: the network the run's ``retrain``
    tweaks transformed it into (soft activation, extra skip paths), with that
    network's trained values, when they did; else ``model`` itself. Returns
    it and what to add to the size report's source."""
    from keras_lottery.config import load_config
    from keras_lottery.runs.retrain import phase_settings, trained_network
    from keras_lottery.tweaks.retraining import RetrainPlan
    from keras_lottery.tweaks.skips import extra_skip_parameters

    phase = os.path.dirname(trained_file)
    if "run_dir" not in where:  # a ticket file given alone
        if os.path.exists(paths.transformed(phase)):
            raise RunFolderError(
                f"{where['ticket']} was trained as a network transformed by "
                f"retrain tweaks ({paths.transformed(phase)}): export its run "
                "folder (with --round for an IMP round), whose config names the "
                "tweaks, or pass --weights rewind."
            )
        return model, {}
    config = load_config(paths.config(where["run_dir"]))
    settings = phase_settings(config, where.get("round"))
    if not RetrainPlan(settings).transforms:
        return model, {}
    network = trained_network(model, settings, phase)
    return network, {
        "tweaks": list(settings.tweaks),
        "extra_skip_parameters": extra_skip_parameters(network),
    }


def _load(ticket_file, trained_file, weights):
    ticket = Ticket.load(ticket_file)
    model = ticket.build_model()
    if weights == "rewind":
        return ticket, model, {"weights": "rewind"}
    if trained_file is None:
        raise RunFolderError(
            f"{ticket_file} has no trained weights beside it (trained.npz); pass "
            "--weights rewind to export the weights stored in the ticket, or give "
            "its run folder."
        )
    restore_state(model, load_arrays(trained_file))
    return ticket, model, {"weights": "trained", "trained": trained_file}
