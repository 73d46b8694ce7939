"""The phases of the methods' run folders, saved as each finishes and read back
to resume (file names in :mod:`keras_lottery.paths`). A phase counts as
finished once its ``record.json`` exists: it is written last, right after the
phase's ``manifest.json`` (:mod:`keras_lottery.manifest`), which is verified
before a phase is read again.

Example:

>>> records, rewind_state = IMPCheckpoints("runs/imp_3f2a9c1d0b7e").resume(model)
"""

from __future__ import annotations

import dataclasses
import glob
import os

from keras_lottery import distributed, paths
from keras_lottery._io import (
    load_arrays,
    read_json,
    reading,
    save_arrays,
)
from keras_lottery._messages import print_msg
from keras_lottery.conversion import copy_of
from keras_lottery.errors import RunFolderError
from keras_lottery.identity import read_identity
from keras_lottery.manifest import MANIFEST, finish_phase, verify_phase
from keras_lottery.methods.records import CSResult, RoundRecord, SearchRoundRecord
from keras_lottery.pruning import sync_state
from keras_lottery.rewind import capture_state
from keras_lottery.ticket import Ticket
from keras_lottery.training import TrainingRecord, assign_all


class IMPCheckpoints:
    """The IMP phases of a run folder (names in :mod:`keras_lottery.paths`):
    ``round_NNN/{record.json, trained.npz, ticket.npz}`` and
    ``rewind_state.npz``. A round counts as finished once its ``record.json``
    exists (written last)."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.out = distributed.write_dir(self.root)  # the chief's is root
        self._extra = []

    def resume(self, model):
        rounds = verified_phases(self.root, paths.ROUND)
        if not rounds:
            return [], None
        records = [_parsed(paths.round_dir(self.root, r), RoundRecord) for r in rounds]
        trained = paths.round_trained(self.root, rounds[-1])
        assign_all(model, load_arrays(trained, _STATE))
        rewind_state = load_arrays(paths.rewind_state(self.root), _STATE)
        return records, rewind_state

    def save_extra_rewind(self, step, state, ticket) -> None:
        """What a run rewinding to ``step`` would save at round 0 (see
        ``IterativeMagnitudePruning(extra_rewinds=...)``)."""
        save_arrays(paths.extra_rewind_state(self.out, step), state)
        ticket.save(paths.extra_rewind_ticket(self.out, step))
        self._extra += [
            paths.extra_rewind_state(self.out, step),
            paths.extra_rewind_ticket(self.out, step),
        ]

    def save_round(self, model, record, rewind_state, ticket, transformed=None):
        """Writes round ``record.round``'s files, ``record.json`` last;
        ``transformed``: the state of the network the ticket trained as when
        the ``retrain`` tweaks transformed it (``transformed.npz``)."""
        r = record.round
        directory = paths.round_dir(self.out, r)
        os.makedirs(directory, exist_ok=True)
        files = [paths.round_trained(self.out, r), paths.round_ticket(self.out, r)]
        if r == 0:
            save_arrays(paths.rewind_state(self.out), rewind_state)
            files += [paths.rewind_state(self.out), *self._extra]
        save_arrays(paths.round_trained(self.out, r), capture_state(model))
        ticket.save(paths.round_ticket(self.out, r))
        files += _save_transformed(directory, transformed)
        finish_phase(directory, _relative(directory, files), record.to_dict())


class CSCheckpoints:
    """The CS phases of a run folder (names in :mod:`keras_lottery.paths`):
    ``search_NNN/{record.json, state.npz, optimizer.npz}``,
    ``rewind_state.npz``, ``ticket.npz``, ``ticket/{record.json, trained.npz}``;
    ``record.json`` files are written last, so their presence marks a finished
    phase."""

    def __init__(self, root):
        self.root = os.fspath(root)
        self.out = distributed.write_dir(self.root)  # the chief's is root

    def resume_search(self, model):
        rounds = verified_phases(self.root, paths.SEARCH)
        if not rounds:
            return [], None
        records = [
            _parsed(paths.search_dir(self.root, r), SearchRoundRecord) for r in rounds
        ]
        assign_all(
            model, load_arrays(paths.search_state(self.root, rounds[-1]), _STATE)
        )
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        saved = load_arrays(
            paths.search_optimizer(self.root, rounds[-1]),
            "a search round's optimizer.npz (optimizer variables)",
        )
        for variable, value in zip(optimizer.variables, saved, strict=True):
            variable.assign(value)
        rewind_state = load_arrays(paths.rewind_state(self.root), _STATE)
        return records, rewind_state

    def save_round(self, model, record, rewind_state) -> None:
        r = record.round
        directory = paths.search_dir(self.out, r)
        os.makedirs(directory, exist_ok=True)
        files = [paths.search_state(self.out, r), paths.search_optimizer(self.out, r)]
        if r == 0:
            save_arrays(paths.rewind_state(self.out), rewind_state)
            files.append(paths.rewind_state(self.out))
        sync_state(model)
        save_arrays(paths.search_state(self.out, r), capture_state(model))
        save_arrays(
            paths.search_optimizer(self.out, r),
            [copy_of(v) for v in model.optimizer.variables],
        )
        finish_phase(directory, _relative(directory, files), record.to_dict())

    def ticket_done(self) -> bool:
        return os.path.exists(paths.record(paths.cs_ticket_dir(self.root)))

    def save_result(self, hard, result: CSResult, transformed=None) -> None:
        """Writes the ticket's files, ``record.json`` last (``transformed``
        as for :meth:`IMPCheckpoints.save_round`)."""
        directory = paths.cs_ticket_dir(self.out)
        os.makedirs(directory, exist_ok=True)
        result.ticket.save(paths.cs_ticket(self.out))
        save_arrays(paths.trained(directory), capture_state(hard))
        files = [paths.cs_ticket(self.out), paths.trained(directory)]
        files += _save_transformed(directory, transformed)
        finish_phase(directory, _relative(directory, files), result.to_dict())

    def load_result(self, records) -> CSResult:
        verify_cs_ticket(self.root)
        data = read_record(paths.cs_ticket_dir(self.root))
        return CSResult(
            records,
            TrainingRecord(**data["ticket_training"]),
            Ticket.load(paths.cs_ticket(self.root)),
            {k: TrainingRecord(**v) for k, v in data["baselines"].items()},
        )


_STATE = "a model state .npz written by a keras_lottery run (arr_0, arr_1, ...)"

#: The entries reports read from each phase prefix's record.json (resuming
#: parses the whole record as its class, see ``_parsed``).
_REQUIRED = {
    paths.ROUND: ("round", "fraction_remaining", "ticket"),
    paths.SEARCH: ("round", "fraction_remaining", "training"),
}


def read_record(directory, required=()) -> dict:
    """The ``record.json`` of a phase folder: a JSON object holding the keys
    ``required`` (:class:`~keras_lottery.errors.CorruptFileError` otherwise)."""
    return read_json(
        paths.record(directory), "a phase record.json of a run folder", required
    )


def _parsed(directory, record_class):
    """The record of a phase folder as ``record_class``; a record missing or
    mistyping a field is a :class:`~keras_lottery.errors.CorruptFileError`."""
    path = paths.record(directory)
    expected = f"a {record_class.__name__} record.json of a run folder"
    data = read_json(path, expected)
    with reading(path, expected):
        required = [
            f.name
            for f in dataclasses.fields(record_class)
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in data]
        if missing:
            raise KeyError(f"no {missing} entries")
        return record_class.from_dict(data)


def phase_records(run_dir: str, prefix: str) -> list[dict]:
    """The ``record.json`` of every finished phase ``<prefix>_NNN`` of a run
    folder (``paths.ROUND`` or ``paths.SEARCH``), in order, each verified
    against its manifest (:func:`verified_phases`); one lacking an entry
    reports read is a :class:`~keras_lottery.errors.CorruptFileError`."""
    return [
        read_record(paths.phase_dir(run_dir, prefix, n), _REQUIRED.get(prefix, ()))
        for n in verified_phases(run_dir, prefix)
    ]


def _relative(directory: str, files) -> list[str]:
    return [os.path.relpath(f, directory) for f in files]


def manifests_required(run_dir: str) -> bool:
    """Whether every finished phase of ``run_dir`` must carry a manifest: the
    folder was started by a version that writes them (``identity.json`` says
    so). Older folders are verified where a manifest exists."""
    identity = read_identity(run_dir)
    return bool(identity and identity.get("manifests"))


def _remedy(run_dir: str, prefix: str, n: int) -> str:
    return (
        f"delete {paths.phase_dir(run_dir, prefix, n)} and every later "
        f"{prefix}_* folder, then re-run to retrain them"
    )


def verified_phases(run_dir: str, prefix: str) -> list[int]:
    """:func:`paths.finished_phases` after checking each finished phase against
    its manifest, and that no phase folder beyond them holds a record (a
    deleted or unreadable ``record.json`` would otherwise drop that phase and
    let a resume overwrite the good ones after it). Raises
    :class:`~keras_lottery.errors.RunFolderError` or
    :class:`~keras_lottery.errors.CorruptFileError` naming the file.

    >>> verified_phases("runs/imp_3f2a9c1d0b7e", paths.ROUND)
    [0, 1, 2]
    """
    finished = paths.finished_phases(run_dir, prefix)
    required = manifests_required(run_dir)
    unverified = []
    for n in finished:
        directory = paths.phase_dir(run_dir, prefix, n)
        if not verify_phase(directory, _remedy(run_dir, prefix, n), required):
            unverified.append(n)
    start = len(prefix) + 1
    for folder in sorted(glob.glob(os.path.join(run_dir, f"{prefix}_*"))):
        suffix = os.path.basename(folder)[start:]
        if not suffix.isdigit() or int(suffix) in finished:
            continue
        n = int(suffix)
        # A manifest without its record is a phase killed between the two,
        # unless the run is over or a phase after it exists.
        stray = os.path.exists(_manifest(folder)) and (
            n > len(finished) or paths.is_finished(run_dir)
        )
        if os.path.exists(paths.record(folder)) or stray:
            missing = paths.record(paths.phase_dir(run_dir, prefix, len(finished)))
            what = "has a manifest" if n == len(finished) else "is finished"
            raise RunFolderError(
                f"{folder} {what} but {missing} is missing: the run folder "
                f"is damaged (a record deleted?). To recover: restore {missing}, "
                f"or {_remedy(run_dir, prefix, len(finished))}."
            )
    if unverified:
        print_msg(
            f"[keras_lottery] warning: {prefix} {unverified} of {run_dir} were "
            "written before manifests existed: their files are not verified."
        )
    return finished


def _manifest(folder: str) -> str:
    return os.path.join(folder, MANIFEST)


def verify_cs_ticket(run_dir: str) -> None:
    """Checks the CS ticket phase (``ticket/``) against its manifest."""
    directory = paths.cs_ticket_dir(run_dir)
    verify_phase(
        directory,
        f"delete {directory} and {paths.cs_ticket(run_dir)}, then re-run to "
        "retrain the ticket",
        manifests_required(run_dir),
    )


def _save_transformed(directory, state) -> list[str]:
    """Saves ``state`` as the phase's ``transformed.npz`` (nothing for None);
    the paths written."""
    if state is None:
        return []
    save_arrays(paths.transformed(directory), state)
    return [paths.transformed(directory)]
