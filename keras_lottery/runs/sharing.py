"""Runs that share phases: a run starts from another run's finished phases
instead of recomputing them, with results identical to an unshared run.

- IMP runs that differ only in ``pruning.rewind`` share their dense round 0 (it
  does not depend on the rewind point): ``run(config, extra_rewinds=[...])``
  also saves the state at those points, and :func:`seed_dense_round` starts
  another run's folder from it, so a rewind sweep trains the dense network once.
- CS runs that differ only in how the search's logits become a ticket
  (``cs.target_sparsity``, ``cs.mode``, ``baselines``) share the search:
  :func:`seed_cs_search` copies it, so another target costs one ticket training.

Example:

>>> seed_cs_search("runs/cs_3e9d0bb40e9e", load_config(
...     "configs/cs_resnet20_cifar10.yaml", ["cs.target_sparsity=0.9"]))
>>> run(config)   # trains only the ticket
"""

from __future__ import annotations

import os

from keras_lottery import paths
from keras_lottery._io import atomic_copy, atomic_write_bytes, atomic_write_text
from keras_lottery.config import RunConfig
from keras_lottery.identity import write_identity
from keras_lottery.manifest import RECORD, write_manifest
from keras_lottery.methods.checkpoints import verified_phases
from keras_lottery.runs.locking import run_folder_lock
from keras_lottery.runs.runner import load_config_of, run_dir_for
from keras_lottery.steps import Step


def has_dense_round(directory: str) -> bool:
    """Whether the run folder holds a finished round 0."""
    return os.path.exists(paths.round_record(directory, 0))


def seed_dense_round(donor_dir: str, config: RunConfig, out: str = "runs") -> bool:
    """Starts ``config``'s run folder from ``donor_dir``'s dense round 0.

    The donor must be a run of the same config except ``pruning.rewind`` that
    saved ``config``'s rewind point (``run(..., extra_rewinds=[...])``). The
    files written are exactly those the run would write after its own round 0
    (same record, trained weights, ticket and rewind state), so running
    ``config`` afterwards resumes at round 1 with results identical to an
    unseeded run. Returns False (and writes nothing) when the folder already
    has round 0 or the donor lacks this rewind point.
    """
    target = run_dir_for(config, out)
    if has_dense_round(target):
        return False
    donor = load_config_of(donor_dir)
    if _config_without(donor, "pruning.rewind") != _config_without(
        config, "pruning.rewind"
    ):
        raise ValueError(
            f"{donor_dir} is not a run of the same config up to pruning.rewind: "
            "its dense round cannot be shared."
        )
    step = Step.parse(config.pruning.rewind)
    if not (
        has_dense_round(donor_dir)
        and os.path.isdir(paths.extra_rewind_dir(donor_dir, step))
    ):
        return False
    verified_phases(donor_dir, paths.ROUND)
    with run_folder_lock(target):
        if has_dense_round(target):  # seeded by another process meanwhile
            return False
        os.makedirs(paths.round_dir(target, 0), exist_ok=True)
        atomic_write_text(paths.config(target), config.to_yaml())
        write_identity(target, config)
        copies = (
            (paths.extra_rewind_state(donor_dir, step), paths.rewind_state(target)),
            (paths.extra_rewind_ticket(donor_dir, step), paths.round_ticket(target, 0)),
            (paths.round_trained(donor_dir, 0), paths.round_trained(target, 0)),
        )
        for src, dst in copies:
            atomic_copy(src, dst)
        _finish_copied_phase(
            paths.round_dir(donor_dir, 0),
            paths.round_dir(target, 0),
            [dst for _, dst in copies],
        )
        return True


def _finish_copied_phase(donor_phase: str, target_phase: str, files) -> None:
    """The manifest of the copied ``files``, then the donor's ``record.json``
    (last: it marks the phase finished)."""
    with open(paths.record(donor_phase), "rb") as handle:
        record = handle.read()
    files = [os.path.relpath(f, target_phase) for f in files]
    write_manifest(target_phase, files, {RECORD: record})
    atomic_write_bytes(paths.record(target_phase), record)


#: CS fields that only change how the finished search becomes a ticket.
TICKET_ONLY_CS_FIELDS = ("target_sparsity", "mode")


def seed_cs_search(donor_dir: str, config: RunConfig, out: str = "runs") -> bool:
    """Starts CS ``config``'s run folder from ``donor_dir``'s finished search.

    The donor must be a CS run of the same config except ``cs.target_sparsity``,
    ``cs.mode`` and ``baselines`` (they only act after the search) with all of
    its ``cs.rounds`` search rounds finished. The files copied are exactly those
    the run would write itself, so running ``config`` afterwards trains only the
    ticket, with results identical to an unseeded run. Returns False (and
    writes nothing) when the folder already has search rounds.

    >>> seed_cs_search("runs/cs_3e9d0bb40e9e", load_config(
    ...     "configs/cs_resnet20_cifar10.yaml", ["cs.target_sparsity=0.9"]))
    """
    if config.method != "cs":
        raise ValueError(
            f"seed_cs_search needs a CS config; got method {config.method!r}."
        )
    target = run_dir_for(config, out)
    if os.path.exists(target) and paths.finished_phases(target, paths.SEARCH):
        return False
    donor = load_config_of(donor_dir)
    ticket_only = [f"cs.{field}" for field in TICKET_ONLY_CS_FIELDS] + ["baselines"]
    if _config_without(donor, *ticket_only) != _config_without(config, *ticket_only):
        raise ValueError(
            f"{donor_dir} is not a CS run of the same config up to "
            f"cs.{'/cs.'.join(TICKET_ONLY_CS_FIELDS)} and baselines: its search "
            "cannot be shared."
        )
    rounds = paths.finished_phases(donor_dir, paths.SEARCH)
    if rounds != list(range(config.cs.rounds)):
        raise ValueError(
            f"{donor_dir} has finished search rounds {rounds}, not all "
            f"{config.cs.rounds}: finish it first (keras-lottery run resumes it)."
        )
    verified_phases(donor_dir, paths.SEARCH)
    with run_folder_lock(target):
        if paths.finished_phases(target, paths.SEARCH):  # seeded meanwhile
            return False
        os.makedirs(target, exist_ok=True)
        atomic_write_text(paths.config(target), config.to_yaml())
        write_identity(target, config)
        atomic_copy(paths.rewind_state(donor_dir), paths.rewind_state(target))
        for r in rounds:
            os.makedirs(paths.search_dir(target, r), exist_ok=True)
            files = [
                name(target, r) for name in (paths.search_state, paths.search_optimizer)
            ]
            for name in (paths.search_state, paths.search_optimizer):
                atomic_copy(name(donor_dir, r), name(target, r))
            if r == 0:
                files.append(paths.rewind_state(target))
            _finish_copied_phase(
                paths.search_dir(donor_dir, r), paths.search_dir(target, r), files
            )
        return True


def _config_without(config: RunConfig, *fields: str) -> dict:
    """``config`` as a dict without ``fields`` (dotted paths) and ``stability``.

    Two runs whose dicts agree share the phases those fields do not act on.
    """
    data = config.to_dict()
    for path in (*fields, "stability"):
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node.pop(leaf, None)
    return data
