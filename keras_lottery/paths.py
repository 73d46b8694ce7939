"""Every on-disk name of a run folder and of the folders made from run folders
(open_lth's ``foundations/paths.py``): one function per file, so the layout is
stated once.

A run folder ``<out>/<method>_<hash>/``::

    config.yaml                      the full config (written first, after
                                     identity.json)
    identity.json                    data sha256, backend, versions (identity.py)
    .lock                            held by the process working in the folder
    <phase>/manifest.json            sizes + sha256 of a finished phase's files
                                     (manifest.py), written just before record.json
    result.json                      written last: the run is finished
    report.txt, <plot>.png           keras-lottery report
    rewind_state.npz                 the full state at the rewind point
    round_NNN/                       IMP: record.json (last), ticket.npz, trained.npz,
                                     transformed.npz (with retrain transforms)
    extra_rewinds/<step>/            IMP: rewind_state.npz, ticket.npz of other k
    search_NNN/                      CS: record.json (last), state.npz, optimizer.npz
    ticket.npz, ticket/              CS: the ticket; record.json, trained.npz,
                                     transformed.npz (with retrain transforms)
    instability/round_NNN/           instability.json, instability.png, copies/
    branches/round_NNN/<kind>/seed_S/record.json
    retrain/round_NNN/retrain_<hash>/seed_S/  keras-lottery retrain: record.json
                                     (last), trained.npz, transformed.npz

An elastic run folder ``<out>/elastic_<hash>/`` (``keras-lottery elastic``)::

    elastic.json, ticket.npz         the request; the transformed ticket
    arms/<arm>/record.json           the trained ticket and each control
    instability/                     instability.json, instability.png, copies/
    report.txt, result.json          result.json last

Sweep folders ``sweep_<hash>/`` hold ``sweep.yaml``, ``logs/``, ``sweep.json``,
``sweep.txt``, plots and (``sweep --tuner``) ``tuner/``; comparison folders
``comparison.{txt,json,png}``.

Example:

>>> paths.round_ticket("runs/imp_3f2a9c1d0b7e", 3)
'runs/imp_3f2a9c1d0b7e/round_003/ticket.npz'
"""

from __future__ import annotations

import glob
import os

# ------------------------------------------------------------------ run folder


def run_dir(out: str, hashname: str) -> str:
    return os.path.join(out, hashname)


def config(run_dir: str) -> str:
    return os.path.join(run_dir, "config.yaml")


def result(run_dir: str) -> str:
    return os.path.join(run_dir, "result.json")


def report(run_dir: str) -> str:
    return os.path.join(run_dir, "report.txt")


def plot(run_dir: str, name: str) -> str:
    """A figure of the run folder: ``accuracy_vs_weights.png`` (IMP),
    ``cs_search.png`` (CS), ``instability_vs_weights.png``."""
    return os.path.join(run_dir, name)


ACCURACY_PLOT = "accuracy_vs_weights.png"
CS_PLOT = "cs_search.png"
INSTABILITY_PLOT = "instability_vs_weights.png"


def rewind_state(run_dir: str) -> str:
    return os.path.join(run_dir, "rewind_state.npz")


def is_finished(run_dir: str) -> bool:
    return os.path.exists(result(run_dir))


# ------------------------------------------------------------------ phases


def phase_dir(run_dir: str, prefix: str, index: int) -> str:
    """``round_NNN`` (IMP rounds) or ``search_NNN`` (CS search rounds)."""
    return os.path.join(run_dir, f"{prefix}_{index:03d}")


def record(directory: str) -> str:
    """``record.json`` of a phase: written last, it marks the phase finished."""
    return os.path.join(directory, "record.json")


def finished_phases(run_dir: str, prefix: str) -> list[int]:
    """The numbers ``N`` of the finished phase folders ``<prefix>_NNN`` (those
    holding ``record.json``), as long as they run 0, 1, 2, ... without a gap: a
    later phase without its predecessor cannot be resumed from."""
    found = glob.glob(os.path.join(run_dir, f"{prefix}_*", "record.json"))
    start = len(prefix) + 1
    numbers = sorted(int(os.path.basename(os.path.dirname(p))[start:]) for p in found)
    return [n for i, n in enumerate(numbers) if n == i]


ROUND = "round"
SEARCH = "search"


def round_dir(run_dir: str, round: int) -> str:
    return phase_dir(run_dir, ROUND, round)


def round_record(run_dir: str, round: int) -> str:
    return record(round_dir(run_dir, round))


def round_ticket(run_dir: str, round: int) -> str:
    return os.path.join(round_dir(run_dir, round), "ticket.npz")


def round_trained(run_dir: str, round: int) -> str:
    return os.path.join(round_dir(run_dir, round), "trained.npz")


def extra_rewind_dir(run_dir: str, step) -> str:
    """Where an IMP run keeps the dense round's state at another rewind point."""
    return os.path.join(run_dir, "extra_rewinds", str(step))


def extra_rewind_state(run_dir: str, step) -> str:
    return rewind_state(extra_rewind_dir(run_dir, step))


def extra_rewind_ticket(run_dir: str, step) -> str:
    """The round-0 ticket of a run rewinding to ``step``."""
    return os.path.join(extra_rewind_dir(run_dir, step), "ticket.npz")


def search_dir(run_dir: str, round: int) -> str:
    return phase_dir(run_dir, SEARCH, round)


def search_state(run_dir: str, round: int) -> str:
    return os.path.join(search_dir(run_dir, round), "state.npz")


def search_optimizer(run_dir: str, round: int) -> str:
    return os.path.join(search_dir(run_dir, round), "optimizer.npz")


def cs_ticket(run_dir: str) -> str:
    return os.path.join(run_dir, "ticket.npz")


def cs_ticket_dir(run_dir: str) -> str:
    return os.path.join(run_dir, "ticket")


def trained(directory: str) -> str:
    return os.path.join(directory, "trained.npz")


def transformed(directory: str) -> str:
    """The state of the network a phase trained when the ``retrain`` tweaks
    transformed it (soft activation, extra skip paths), next to its
    ``trained.npz`` (which holds the ticket's layers only): an IMP round's, a
    CS ticket's, a retraining's."""
    return os.path.join(directory, "transformed.npz")


# ------------------------------------------------------------------ branches


def instability_dir(run_dir: str, round: int) -> str:
    return os.path.join(run_dir, "instability", f"round_{round:03d}")


def instability_json(run_dir: str, round: int) -> str:
    return os.path.join(instability_dir(run_dir, round), "instability.json")


def instability_plot(run_dir: str, round: int) -> str:
    return os.path.join(instability_dir(run_dir, round), "instability.png")


def instability_copies(run_dir: str, round: int) -> str:
    return os.path.join(instability_dir(run_dir, round), "copies")


def all_instability_jsons(run_dir: str) -> list[str]:
    return sorted(
        glob.glob(os.path.join(run_dir, "instability", "round_*", "instability.json"))
    )


def branch_dir(run_dir: str, round: int, kind: str, seed: int) -> str:
    return os.path.join(run_dir, "branches", f"round_{round:03d}", kind, f"seed_{seed}")


def all_branch_records(run_dir: str) -> list[str]:
    pattern = os.path.join(run_dir, "branches", "round_*", "*", "seed_*", "record.json")
    return sorted(glob.glob(pattern))


def retrain_dir(run_dir: str, round: int, name: str, seed: int) -> str:
    """A ticket retrained with tweaks (``name``: ``retrain_<hash>`` of the
    ``retrain`` settings, see :func:`keras_lottery.tweaks.retraining.settings_name`)."""
    return os.path.join(run_dir, "retrain", f"round_{round:03d}", name, f"seed_{seed}")


def retrain_parts(directory: str) -> tuple[str, int, str, int] | None:
    """``(run_dir, round, name, seed)`` of a folder made by :func:`retrain_dir`,
    ``None`` for any other path.

    >>> paths.retrain_parts("runs/imp_3f/retrain/round_002/retrain_0a1b2c3d4e5f/seed_1")
    ('runs/imp_3f', 2, 'retrain_0a1b2c3d4e5f', 1)
    """
    seed_dir, rest = _split(os.path.normpath(directory))
    name, rest = _split(rest)
    round_dir, rest = _split(rest)
    kind, run = _split(rest)
    if kind != "retrain" or not name.startswith("retrain_") or not run:
        return None
    round, seed = _number(round_dir, "round_"), _number(seed_dir, "seed_")
    if round is None or seed is None:
        return None
    return run, round, name, seed


def _split(path: str) -> tuple[str, str]:
    return os.path.basename(path), os.path.dirname(path)


def _number(name: str, prefix: str) -> int | None:
    digits = name[len(prefix) :]
    return int(digits) if name.startswith(prefix) and digits.isdigit() else None


def all_retrain_records(run_dir: str) -> list[str]:
    pattern = os.path.join(run_dir, "retrain", "round_*", "*", "seed_*", "record.json")
    return sorted(glob.glob(pattern))


# ------------------------------------------------------------------ elastic


def elastic_spec(directory: str) -> str:
    return os.path.join(directory, "elastic.json")


def elastic_ticket(directory: str) -> str:
    return os.path.join(directory, "ticket.npz")


def elastic_arm_record(directory: str, arm: str) -> str:
    return record(os.path.join(directory, "arms", arm))


def all_elastic_arm_records(directory: str) -> list[str]:
    return sorted(glob.glob(os.path.join(directory, "arms", "*", "record.json")))


def elastic_instability_dir(directory: str) -> str:
    return os.path.join(directory, "instability")


def elastic_instability_json(directory: str) -> str:
    return os.path.join(elastic_instability_dir(directory), "instability.json")


def elastic_instability_plot(directory: str) -> str:
    return os.path.join(elastic_instability_dir(directory), "instability.png")


def elastic_instability_copies(directory: str) -> str:
    return os.path.join(elastic_instability_dir(directory), "copies")


# ------------------------------------------------------------------ sweeps


def sweep_config(directory: str) -> str:
    return os.path.join(directory, "sweep.yaml")


def sweep_logs(directory: str) -> str:
    return os.path.join(directory, "logs")


def sweep_log(directory: str, index: int) -> str:
    return os.path.join(sweep_logs(directory), f"setting_{index:02d}.log")


def sweep_json(directory: str) -> str:
    return os.path.join(directory, "sweep.json")


def sweep_text(directory: str) -> str:
    return os.path.join(directory, "sweep.txt")


SWEEP_TUNER = "tuner"


def sweep_tuner(directory: str) -> str:
    """The Keras Tuner project of a ``sweep --tuner`` (oracle and trial
    records) when no ``--tuner-dir`` is given."""
    return os.path.join(directory, SWEEP_TUNER)


SWEEP_PLOT = "sweep.png"
REPLICATES_PLOT = "replicates.png"
REWIND_ACCURACY_PLOT = "accuracy_vs_rewind.png"
REWIND_INSTABILITY_PLOT = "instability_vs_rewind.png"
REWIND_CURVES_PLOT = "interpolation_curves.png"


def sweep_plot(directory: str, name: str) -> str:
    """A figure of a sweep folder: ``SWEEP_PLOT``, ``REPLICATES_PLOT`` (grid
    sweeps) or the ``REWIND_*_PLOT`` names (rewind sweeps)."""
    return os.path.join(directory, name)


def comparison(directory: str, ext: str) -> str:
    """``comparison.txt``, ``.json`` or ``.png``."""
    return os.path.join(directory, f"comparison.{ext}")
