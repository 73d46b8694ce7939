"""Points in training, written like open_lth's steps: ``"500it"`` (after 500
optimizer steps), ``"2ep"`` (after 2 epochs) or ``0`` (the initialization).

Example:

>>> Step.parse("2ep").iterations(steps_per_epoch=391)
782
>>> str(Step.parse(0))
'0it'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_STEP = re.compile(r"^\s*(\d+)\s*(it|ep)?\s*$")


@dataclass(frozen=True)
class Step:
    """A point in training: ``amount`` iterations or epochs."""

    amount: int
    unit: str  # "it" or "ep"

    @classmethod
    def parse(cls, value) -> Step:
        """Parses ``"500it"``, ``"2ep"``, ``0``/``"0"`` (=0it) or a Step."""
        if isinstance(value, Step):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"A step cannot be negative; got {value}.")
            return cls(int(value), "it")
        match = _STEP.match(str(value)) if isinstance(value, str) else None
        if not match:
            raise ValueError(
                f"Invalid step {value!r}: write a number of iterations like '500it', "
                "a number of epochs like '2ep', or 0 for the initialization."
            )
        amount, unit = int(match.group(1)), match.group(2) or "it"
        if unit == "it" or amount == 0:
            return cls(amount, "it")
        return cls(amount, unit)

    def iterations(self, steps_per_epoch: int) -> int:
        """This step in optimizer iterations."""
        return self.amount * steps_per_epoch if self.unit == "ep" else self.amount

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"
