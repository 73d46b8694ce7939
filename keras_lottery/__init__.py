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

The package imports its submodules on first use (PEP 562), so ``import
keras_lottery`` and the command line's ``--help`` do not start TensorFlow. The
Keras classes a ticket or saved model can name (masked and soft-mask layers,
optimizers, schedules) are registered as soon as Keras is loaded through the
library: on first use of any public name, or at import when Keras was imported
first; :meth:`Ticket.build_model` and :meth:`Ticket.load` register them too.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.1.0"

#: Submodules available as attributes.
_SUBMODULES = (
    "analysis",
    "callbacks",
    "controls",
    "elastic",
    "export",
    "gradual",
    "layers",
    "models",
    "pruning",
    "pruning_schedules",
    "schedules",
)

#: Public name -> the module that defines it.
_NAMES = {
    "instability": "keras_lottery.analysis",
    "interpolation_curve": "keras_lottery.analysis",
    "RunConfig": "keras_lottery.config",
    "load_config": "keras_lottery.config",
    "harden": "keras_lottery.conversion",
    "prunable": "keras_lottery.conversion",
    "soften": "keras_lottery.conversion",
    "export_saved_model": "keras_lottery.export",
    "strip_masks": "keras_lottery.export",
    "GradualPruning": "keras_lottery.gradual",
    "ContinuousSparsification": "keras_lottery.methods",
    "CSResult": "keras_lottery.methods",
    "IMPResult": "keras_lottery.methods",
    "IterativeMagnitudePruning": "keras_lottery.methods",
    "CoupledAdam": "keras_lottery.optimizers",
    "CoupledSGD": "keras_lottery.optimizers",
    "Recipe": "keras_lottery.recipes",
    "Ticket": "keras_lottery.ticket",
}

#: Modules whose import registers every Keras class a ticket can reference.
_SERIALIZABLES = (
    "keras_lottery.layers",
    "keras_lottery.tweaks.distill",
    "keras_lottery.tweaks.losses",
    "keras_lottery.optimizers",
    "keras_lottery.pruning_schedules",
    "keras_lottery.schedules",
    "keras_lottery.tweaks.activations",
    "keras_lottery.tweaks.skips",
)


def register_serializables() -> None:
    """Imports the modules that register keras_lottery's Keras classes
    (``keras_lottery>MaskedDense``, ``>CoupledAdam``, ...) so that
    ``keras.saving`` can deserialize them in a fresh process.

    >>> keras_lottery.register_serializables()
    >>> keras.saving.load_model("ticket.keras")
    """
    for name in _SERIALIZABLES:
        importlib.import_module(name)


def __getattr__(name: str):
    if name in _SUBMODULES:
        register_serializables()
        value = importlib.import_module(f"keras_lottery.{name}")
    elif name in _NAMES:
        register_serializables()
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'keras_lottery' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "CSResult",
    "ContinuousSparsification",
    "CoupledAdam",
    "CoupledSGD",
    "GradualPruning",
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
    "gradual",
    "harden",
    "instability",
    "interpolation_curve",
    "layers",
    "load_config",
    "models",
    "prunable",
    "pruning",
    "pruning_schedules",
    "schedules",
    "soften",
    "strip_masks",
]

if "keras" in sys.modules:  # Keras is loaded already: registering costs nothing
    register_serializables()
