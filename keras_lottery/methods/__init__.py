"""Ticket-finding methods, registered by name (see :mod:`.registry`):
``imp`` (iterative magnitude pruning with rewinding) and ``cs`` (Continuous
Sparsification).

Example:

>>> from keras_lottery.methods import registry
>>> registry.names()
['cs', 'imp']
"""

from keras_lottery.methods import cs, imp, registry
from keras_lottery.methods.cs import ContinuousSparsification, CSResult
from keras_lottery.methods.imp import IMPResult, IterativeMagnitudePruning

__all__ = [
    "CSResult",
    "ContinuousSparsification",
    "IMPResult",
    "IterativeMagnitudePruning",
    "cs",
    "imp",
    "registry",
]
