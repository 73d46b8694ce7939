"""Results of an instability analysis: one pair of copies, and the replicates.

:class:`PairResult` holds the seeds, the :class:`InterpolationCurve` and the
training summaries of two copies; :class:`InstabilityResult` summarizes the
barriers of several pairs (mean, sample standard deviation, min, max, the mean
endpoint error and the verdict against a threshold) and converts to and from
the JSON that ``instability.json`` files hold.

Example:

>>> result = InstabilityResult.from_dict(json.load(open("instability.json")))
>>> result.stats("test")["mean"], result.stable("test")
>>> print(result.summary())
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from keras_lottery.analysis.interpolation import InterpolationCurve

__all__ = ["InstabilityResult", "PairResult"]


@dataclass
class PairResult:
    """One replicate: two copies (their data-order seeds) and their curve."""

    seeds: tuple[int, int]
    curve: InterpolationCurve
    copies: list[dict] = field(default_factory=list)
    """Training summaries of the two copies (final metrics, steps, seconds)."""

    def barrier(self, split: str = "test") -> float:
        return self.curve.barrier(split)

    def to_dict(self) -> dict:
        return {
            "seeds": list(self.seeds),
            "curve": self.curve.to_dict(),
            "copies": self.copies,
            "barriers": {s: self.curve.barrier(s) for s in self.curve.errors},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> PairResult:
        return cls(
            seeds=tuple(data["seeds"]),
            curve=InterpolationCurve.from_dict(data["curve"]),
            copies=list(data.get("copies", [])),
        )


@dataclass
class InstabilityResult:
    """Replicated instability of one starting state.

    ``stable(split)`` compares the *mean* barrier over pairs with ``threshold``.
    """

    pairs: list[PairResult]
    threshold: float
    start_step: int
    settings: dict = field(default_factory=dict)

    @property
    def splits(self) -> list[str]:
        return list(self.pairs[0].curve.errors) if self.pairs else []

    def barriers(self, split: str = "test") -> list[float]:
        return [p.barrier(split) for p in self.pairs]

    def stats(self, split: str = "test") -> dict:
        """Mean, sample standard deviation (0 for one pair), min and max of the
        barrier over pairs, and the mean endpoint error."""
        values = np.array(self.barriers(split))
        ends = [np.mean(p.curve.endpoint_errors(split)) for p in self.pairs]
        return {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()),
            "max": float(values.max()),
            "endpoint_error": float(np.mean(ends)),
            "stable": bool(values.mean() < self.threshold),
        }

    def stable(self, split: str = "test") -> bool:
        return self.stats(split)["stable"]

    def mean_curve(self, split: str = "test") -> dict:
        """Mean, min and max error at each ``a`` over pairs."""
        errors = np.array([p.curve.errors[split] for p in self.pairs])
        return {
            "alphas": self.pairs[0].curve.alphas,
            "mean": errors.mean(axis=0).tolist(),
            "min": errors.min(axis=0).tolist(),
            "max": errors.max(axis=0).tolist(),
        }

    def summary(self) -> str:
        """One line per split: barrier mean ± std over pairs and the verdict."""
        lines = []
        for split in self.splits:
            s = self.stats(split)
            verdict = "stable" if s["stable"] else "unstable"
            lines.append(
                f"{split}: instability {100 * s['mean']:.2f} ± {100 * s['std']:.2f} "
                f"pp over {len(self.pairs)} pair(s) (endpoint error "
                f"{100 * s['endpoint_error']:.2f}%) -> {verdict} at "
                f"{100 * self.threshold:g}%"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "start_step": self.start_step,
            "threshold": self.threshold,
            "settings": self.settings,
            "summary": {split: self.stats(split) for split in self.splits},
            "mean_curves": {split: self.mean_curve(split) for split in self.splits},
            "pairs": [p.to_dict() for p in self.pairs],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> InstabilityResult:
        return cls(
            pairs=[PairResult.from_dict(p) for p in data["pairs"]],
            threshold=data["threshold"],
            start_step=data["start_step"],
            settings=dict(data.get("settings", {})),
        )
