"""Typed run configuration: the single source of truth for YAML files, CLI
overrides and hash-named run folders (open_lth's discipline).

A YAML file mirrors :class:`RunConfig` section by section; unknown keys, values
of the wrong type and values out of range are errors naming the key and what
is allowed. ``--set section.key=value`` overrides use YAML syntax for the value.

Example:

>>> config = load_config("configs/lenet_mnist.yaml", ["pruning.rounds=3"])
>>> config.hashname()
'imp_3f2a9c1d0b7e'
>>> load_config(None, ["pruning.fraction=1.5"])
Traceback (most recent call last):
ConfigError: 'pruning.fraction' must be a number in (0, 1); got 1.5.
"""

from keras_lottery.config.parsing import apply_overrides, from_dict, load_config
from keras_lottery.config.sections import (
    ANALYSIS_SECTIONS,
    AUGMENTATIONS,
    CS_MODES,
    EVALUATE_AT,
    LOGIT_RESETS,
    METHOD_SECTIONS,
    OPTIMIZERS,
    REWIND_MODES,
    ConfigError,
    CSConfig,
    DataConfig,
    ModelConfig,
    PruningConfig,
    RetrainConfig,
    RunConfig,
    StabilityConfig,
    TrainingConfig,
)

__all__ = [
    "ANALYSIS_SECTIONS",
    "AUGMENTATIONS",
    "CS_MODES",
    "EVALUATE_AT",
    "LOGIT_RESETS",
    "METHOD_SECTIONS",
    "OPTIMIZERS",
    "REWIND_MODES",
    "CSConfig",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "PruningConfig",
    "RetrainConfig",
    "RunConfig",
    "StabilityConfig",
    "TrainingConfig",
    "apply_overrides",
    "from_dict",
    "load_config",
]
