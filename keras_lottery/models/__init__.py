"""Model zoo: builders made of masked layers, with introspectable topology.

>>> from keras_lottery import models
>>> model = models.get("lenet_300_100", num_classes=10)
>>> models.names()
"""

from keras_lottery.models import cifar_resnet, classic, imagenet_resnet, mobilenet, vgg  # noqa: F401
from keras_lottery.models.registry import (
    Architecture,
    Block,
    Stage,
    copy_architecture,
    count_parameters,
    describe,
    get,
    layers_in_scope,
    names,
    pruning_scope,
    register,
)

__all__ = [
    "Architecture",
    "Block",
    "Stage",
    "copy_architecture",
    "count_parameters",
    "describe",
    "get",
    "layers_in_scope",
    "names",
    "pruning_scope",
    "register",
]
