"""Analyses of tickets: linear interpolation and instability.

- :mod:`~keras_lottery.analysis.interpolation`: the linear path between two
  networks with the same masks, its error curve and barrier;
- :mod:`~keras_lottery.analysis.instability`: copies trained from one state
  that differ only in SGD noise, and the barrier between them over pairs;
- :mod:`~keras_lottery.analysis.results`: :class:`PairResult` and
  :class:`InstabilityResult`;
- :mod:`~keras_lottery.analysis.copies`: the on-disk cache of trained copies
  and pair curves.

Every public name is available here. (``keras_lottery.analysis.instability`` is
the function; the module is ``sys.modules["keras_lottery.analysis.instability"]``.)

Example:

>>> from keras_lottery import analysis
>>> result = analysis.instability(ticket, recipe, pairs=2, points=11)
>>> curve = analysis.interpolation_curve(model_a, model_b, {"test": (x, y)})
"""

from keras_lottery.analysis.copies import CopyCache, copy_summary
from keras_lottery.analysis.instability import (
    default_start_step,
    instability,
    pair_seeds,
    settings_with,
    start_model,
    train_copy,
)
from keras_lottery.analysis.interpolation import (
    InterpolationCurve,
    alphas,
    batch_norm_layers,
    check_compatible,
    check_states,
    curve_between_states,
    interpolate_states,
    interpolation_curve,
    reestimate_batch_norm,
    write_interpolation,
)
from keras_lottery.analysis.results import InstabilityResult, PairResult

__all__ = [
    "CopyCache",
    "InstabilityResult",
    "InterpolationCurve",
    "PairResult",
    "alphas",
    "batch_norm_layers",
    "check_compatible",
    "check_states",
    "copy_summary",
    "curve_between_states",
    "default_start_step",
    "instability",
    "interpolate_states",
    "interpolation_curve",
    "pair_seeds",
    "reestimate_batch_norm",
    "settings_with",
    "start_model",
    "train_copy",
    "write_interpolation",
]
