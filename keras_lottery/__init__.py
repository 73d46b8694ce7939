"""keras_lottery: lottery-ticket toolkit for Keras 3.

Find sparse "winning tickets" (iterative magnitude pruning with rewinding,
Continuous Sparsification), analyze them and ship them, without leaving
ordinary Keras. The names below are the public API; submodules hold the rest
(``keras_lottery.pruning``, ``.callbacks``, ``.controls``, ...).

>>> import keras_lottery as kl
>>> model = kl.prunable(model)                       # masked twins, same outputs
>>> kl.pruning.prune_magnitude(model, 0.2)           # drop 20% of remaining weights
>>> print(kl.pruning.sparsity_report(model))
>>> imp = kl.IterativeMagnitudePruning(fraction=0.2, rounds=5)
>>> kl.export.export_saved_model(model, "ticket/")   # plain SavedModel
"""

from keras_lottery import (
    analysis,
    callbacks,
    controls,
    elastic,
    export,
    layers,
    models,
    pruning,
    schedules,
)
from keras_lottery.analysis import instability, interpolation_curve
from keras_lottery.config import RunConfig, load_config
from keras_lottery.conversion import harden, prunable, soften
from keras_lottery.export import export_saved_model, strip_masks
from keras_lottery.methods import (
    ContinuousSparsification,
    CSResult,
    IMPResult,
    IterativeMagnitudePruning,
)
from keras_lottery.optimizers import CoupledAdam, CoupledSGD
from keras_lottery.recipes import Recipe
from keras_lottery.ticket import Ticket

__version__ = "0.1.0"

__all__ = [
    "CSResult",
    "ContinuousSparsification",
    "CoupledAdam",
    "CoupledSGD",
    "IMPResult",
    "IterativeMagnitudePruning",
    "Recipe",
    "RunConfig",
    "Ticket",
    "__version__",
    "analysis",
    "callbacks",
    "controls",
    "elastic",
    "export",
    "export_saved_model",
    "harden",
    "instability",
    "interpolation_curve",
    "layers",
    "load_config",
    "models",
    "prunable",
    "pruning",
    "schedules",
    "soften",
    "strip_masks",
]
