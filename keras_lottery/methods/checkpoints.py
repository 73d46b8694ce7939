"""The phases of the methods' run folders, saved as each finishes and read back
to resume (file names in :mod:`keras_lottery.paths`). A phase counts as
finished once its ``record.json`` exists: it is written last.

Example:

>>> records, rewind_state = IMPCheckpoints("runs/imp_3f2a9c1d0b7e").resume(model)
"""

from __future__ import annotations

import json
import os

from keras_lottery import paths
from keras_lottery._io import atomic_write_json, load_arrays, save_arrays
from keras_lottery.conversion import copy_of
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

    def resume(self, model):
        rounds = paths.finished_phases(self.root, paths.ROUND)
        if not rounds:
            return [], None
        records = []
        for r in rounds:
            with open(paths.round_record(self.root, r)) as handle:
                records.append(RoundRecord.from_dict(json.load(handle)))
        assign_all(model, load_arrays(paths.round_trained(self.root, rounds[-1])))
        rewind_state = load_arrays(paths.rewind_state(self.root))
        return records, rewind_state

    def save_extra_rewind(self, step, state, ticket) -> None:
        """What a run rewinding to ``step`` would save at round 0 (see
        ``IterativeMagnitudePruning(extra_rewinds=...)``)."""
        save_arrays(paths.extra_rewind_state(self.root, step), state)
        ticket.save(paths.extra_rewind_ticket(self.root, step))

    def save_round(self, model, record, rewind_state, ticket) -> None:
        r = record.round
        os.makedirs(paths.round_dir(self.root, r), exist_ok=True)
        if r == 0:
            save_arrays(paths.rewind_state(self.root), rewind_state)
        save_arrays(paths.round_trained(self.root, r), capture_state(model))
        ticket.save(paths.round_ticket(self.root, r))
        atomic_write_json(paths.round_record(self.root, r), record.to_dict())


class CSCheckpoints:
    """The CS phases of a run folder (names in :mod:`keras_lottery.paths`):
    ``search_NNN/{record.json, state.npz, optimizer.npz}``,
    ``rewind_state.npz``, ``ticket.npz``, ``ticket/{record.json, trained.npz}``;
    ``record.json`` files are written last, so their presence marks a finished
    phase."""

    def __init__(self, root):
        self.root = os.fspath(root)

    def resume_search(self, model):
        rounds = paths.finished_phases(self.root, paths.SEARCH)
        if not rounds:
            return [], None
        records = [
            SearchRoundRecord.from_dict(read_record(paths.search_dir(self.root, r)))
            for r in rounds
        ]
        assign_all(model, load_arrays(paths.search_state(self.root, rounds[-1])))
        optimizer = model.optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        saved = load_arrays(paths.search_optimizer(self.root, rounds[-1]))
        for variable, value in zip(optimizer.variables, saved, strict=True):
            variable.assign(value)
        rewind_state = load_arrays(paths.rewind_state(self.root))
        return records, rewind_state

    def save_round(self, model, record, rewind_state) -> None:
        r = record.round
        os.makedirs(paths.search_dir(self.root, r), exist_ok=True)
        if r == 0:
            save_arrays(paths.rewind_state(self.root), rewind_state)
        sync_state(model)
        save_arrays(paths.search_state(self.root, r), capture_state(model))
        save_arrays(
            paths.search_optimizer(self.root, r),
            [copy_of(v) for v in model.optimizer.variables],
        )
        atomic_write_json(
            paths.record(paths.search_dir(self.root, r)), record.to_dict()
        )

    def ticket_done(self) -> bool:
        return os.path.exists(paths.record(paths.cs_ticket_dir(self.root)))

    def save_result(self, hard, result: CSResult) -> None:
        directory = paths.cs_ticket_dir(self.root)
        os.makedirs(directory, exist_ok=True)
        result.ticket.save(paths.cs_ticket(self.root))
        save_arrays(paths.trained(directory), capture_state(hard))
        atomic_write_json(paths.record(directory), result.to_dict())

    def load_result(self, records) -> CSResult:
        data = read_record(paths.cs_ticket_dir(self.root))
        return CSResult(
            records,
            TrainingRecord(**data["ticket_training"]),
            Ticket.load(paths.cs_ticket(self.root)),
            {k: TrainingRecord(**v) for k, v in data["baselines"].items()},
        )


def read_record(directory) -> dict:
    """The ``record.json`` of a phase folder."""
    with open(paths.record(directory)) as handle:
        return json.load(handle)


def phase_records(run_dir: str, prefix: str) -> list[dict]:
    """The ``record.json`` of every finished phase ``<prefix>_NNN`` of a run
    folder (``paths.ROUND`` or ``paths.SEARCH``), in order."""
    return [
        read_record(paths.phase_dir(run_dir, prefix, n))
        for n in paths.finished_phases(run_dir, prefix)
    ]
