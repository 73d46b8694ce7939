"""What the methods' phases record: IMP rounds, CS search rounds, and the
results the drivers return (records plus the final ticket). Records are saved
as ``record.json`` (``to_dict``) and read back (``from_dict``) on resume.

Example:

>>> record = RoundRecord.from_dict(json.load(open("round_003/record.json")))
>>> record.ticket.test["accuracy"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from keras_lottery.methods.tables import format_round_table
from keras_lottery.ticket import Ticket
from keras_lottery.training import TrainingRecord


@dataclass
class RoundRecord:
    """One IMP round: sparsity after pruning and the training that followed."""

    round: int
    fraction_remaining: float
    layers_remaining: dict[str, float]
    ticket: TrainingRecord
    baselines: dict[str, TrainingRecord] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> RoundRecord:
        data = dict(data)
        data["ticket"] = TrainingRecord(**data["ticket"])
        data["baselines"] = {
            k: TrainingRecord(**v) for k, v in data["baselines"].items()
        }
        return cls(**data)


@dataclass
class IMPResult:
    """Per-round records and the final ticket of an IMP run. ``network``: when
    the ``retrain`` tweaks transformed the network (soft activation, extra
    skips), the last round's ticket as it trained, with its trained values
    (the model given to ``run`` holds the ticket's own layers only); else
    None."""

    rounds: list[RoundRecord]
    ticket: Ticket
    network: object = None

    def table(self, metric: str = "accuracy") -> str:
        """Round | weights remaining | ticket / controls ``metric`` on test data
        (validation, then training metrics when there is no test data)."""
        return format_round_table([r.to_dict() for r in self.rounds], metric)

    def to_dict(self) -> dict:
        return {
            "rounds": [r.to_dict() for r in self.rounds],
            "ticket": {
                k: v for k, v in self.ticket.metadata.items() if k != "model_config"
            },
        }


@dataclass
class SearchRoundRecord:
    """One search round: the training and the mask it left (``s > 0``)."""

    round: int
    fraction_remaining: float
    layers_remaining: dict[str, float]
    final_temperature: float
    training: TrainingRecord

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> SearchRoundRecord:
        data = dict(data)
        data["training"] = TrainingRecord(**data["training"])
        return cls(**data)


@dataclass
class CSResult:
    """Search rounds, the trained ticket and its controls; ``network`` as for
    :class:`IMPResult` (the ticket as it trained, when the ``retrain`` tweaks
    transformed it)."""

    rounds: list[SearchRoundRecord]
    ticket_training: TrainingRecord
    ticket: Ticket
    baselines: dict[str, TrainingRecord] = field(default_factory=dict)
    network: object = None

    @property
    def epochs(self) -> dict[str, int]:
        """Epochs spent: search, ticket training and total (controls excluded)."""
        search = sum(r.training.epochs for r in self.rounds)
        return {
            "search": search,
            "ticket": self.ticket_training.epochs,
            "total": search + self.ticket_training.epochs,
        }

    def to_dict(self) -> dict:
        return {
            "rounds": [r.to_dict() for r in self.rounds],
            "ticket_training": asdict(self.ticket_training),
            "baselines": {k: asdict(v) for k, v in self.baselines.items()},
            "epochs": self.epochs,
            "ticket": {
                k: v for k, v in self.ticket.metadata.items() if k != "model_config"
            },
        }
