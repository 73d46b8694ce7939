"""Extra skip connections: two dense 1x1 paths per residual basic block.

Jaiswal et al. (2021) retrain a ticket with two extra paths in every basic block
(ToST's ``skip_connection``), which :func:`add_extra_skips` adds to a copy of a
registry ResNet (CIFAR ResNets, ``resnet18``/``26``/``34``):

* ``{block}_skip1``: BN(1x1 conv, in -> planes, the block's stride) of the block
  input, added to ``bn1(conv1(x))`` before the first activation;
* ``{block}_skip2``: BN(1x1 conv, planes -> planes) of the first activation,
  added to the residual sum before the block's final activation.

The 1x1 kernels start at the constant 1e-4 and the BNs at gamma = 1, beta = 0
(ToST's init). In training mode a BN divides by its batch's standard deviation,
so the 1e-4 does not keep the paths small: they start at a strength set by the
BN's epsilon and the block's width (measured on ResNet-20 and CIFAR-10: the
logits of a batch change by 224% in training mode, 0.95% in inference mode).
``bn_gamma=0`` starts them silent in both modes (a deviation from ToST; see
docs/tweaks.md).
They are plain Keras layers (never masked, so never pruned and never in a
ticket's sparsity counts: :func:`extra_skip_parameters` reports them apart) and
both paths are scaled by one shared non-trainable multiplier ``alpha``
(:class:`SkipScale`, layer ``extra_skip_alpha``), which :class:`ExtraSkipFade`
can move during ``fit`` (the paper's "ghost" connections that fade out; ToST's
released scripts keep alpha = 1 throughout, the default here).

Example:

>>> model = keras_lottery.models.get("cifar_resnet_20", classifier_activation=None)
>>> skip = add_extra_skips(model)
>>> extra_skip_parameters(skip)
31041
>>> skip.fit(x, y, callbacks=[ExtraSkipFade(lambda epoch: max(0.0, 1 - epoch / 10))])
"""

from __future__ import annotations

import math
import re

import keras
import numpy as np
from keras import ops

from keras_lottery.conversion import check_graph_model
from keras_lottery.errors import ConfigError
from keras_lottery.layers._base import PACKAGE
from keras_lottery.models._common import BN_EPSILON, BN_MOMENTUM
from keras_lottery.models.registry import copy_architecture, describe
from keras_lottery.tweaks._clone import copy_weights_by_name, named_inputs

#: Name of the shared :class:`SkipScale` layer holding alpha.
ALPHA_LAYER = "extra_skip_alpha"
#: Initial value of every 1x1 kernel entry of the extra paths (ToST's init).
KERNEL_INIT = 1e-4

_PATH_LAYER = re.compile(r"_skip[12]_(conv|bn)$")
#: Layers a basic block built by the model zoo has, by name suffix.
_BASIC_PARTS = ("_conv1", "_bn1", "_relu1", "_conv2", "_bn2", "_add", "_out")


@keras.saving.register_keras_serializable(package=PACKAGE)
class SkipScale(keras.layers.Layer):
    """Multiplies its input by ``alpha``, a non-trainable scalar variable.

    One instance is shared by every extra skip path of a model, so setting
    ``layer.alpha`` scales them all.

    Example:

    >>> scale = SkipScale(0.5)
    >>> float(scale(keras.ops.ones(())))
    0.5
    """

    def __init__(self, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_alpha = _check_alpha(alpha, "alpha")

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_alpha),
            trainable=False,
        )

    def call(self, inputs):
        return ops.multiply(inputs, ops.cast(self.alpha, inputs.dtype))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "alpha": self.initial_alpha}


def add_extra_skips(model, alpha: float = 1.0, bn_gamma: float = 1.0) -> keras.Model:
    """A copy of ``model`` with the two extra skip paths in every basic block.

    ``model`` is a Functional model built by :func:`keras_lottery.models.get`
    (or a copy that kept its topology, e.g. :func:`with_soft_activations`),
    whose blocks use the zoo's names (``stage{s}_block{b}_conv1`` ...). The
    original layers keep their names, weights and masks; the new layers are
    listed by :func:`extra_skip_layers`. ``alpha`` is the multiplier's start
    value; ``bn_gamma`` the initial gamma of the paths' BNs (1 as in ToST; 0
    makes the copy compute exactly what ``model`` computes, in training mode
    too, until the paths have learned). A model without basic blocks (LeNet,
    VGG, a bottleneck ResNet-50, a model of unknown topology) raises
    :class:`~keras_lottery.errors.ConfigError`. The copy is not compiled.

    Example:

    >>> skip = add_extra_skips(keras_lottery.models.get("resnet18"))
    >>> tuple(skip.get_layer("stage1_block1_skip1_conv").kernel.shape)
    (1, 1, 64, 64)
    """
    alpha = _check_alpha(alpha, "alpha")
    bn_gamma = _check_alpha(bn_gamma, "bn_gamma")
    try:
        check_graph_model(model, "add_extra_skips")
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if isinstance(model, keras.Sequential):
        raise ConfigError(
            "add_extra_skips needs a Functional ResNet; a Sequential model has no "
            "residual blocks."
        )
    if extra_skip_layers(model):
        raise ConfigError(f"{model.name!r} already has extra skip paths.")
    blocks = _basic_blocks(model)
    copy = keras.models.clone_model(
        model,
        input_tensors=named_inputs(model),
        call_function=_Rewire(
            model, blocks, SkipScale(alpha, name=ALPHA_LAYER), bn_gamma
        ),
    )
    copy_weights_by_name(model, copy)
    return copy_architecture(model, copy)


def extra_skip_layers(model) -> list[str]:
    """Names of the layers of the extra skip paths (1x1 convs and their BNs),
    in model order; empty for a model without them.

    >>> extra_skip_layers(add_extra_skips(model))[:2]
    ['stage1_block1_skip1_conv', 'stage1_block1_skip1_bn']
    """
    return [layer.name for layer in model.layers if _PATH_LAYER.search(layer.name)]


def extra_skip_parameters(model) -> int:
    """Parameters of the extra skip paths, counted as
    :func:`keras_lottery.models.count_parameters` counts (kernels, gamma and
    beta, no BN moving statistics, plus the shared alpha), so that
    ``count_parameters`` of the copy is the original's plus this. They are dense
    and outside every sparsity count of the library (only masked layers are
    counted there).

    >>> extra_skip_parameters(add_extra_skips(models.get("cifar_resnet_20")))
    31041
    """
    total = 1 if extra_skip_layers(model) else 0  # alpha
    for name in extra_skip_layers(model):
        layer = model.get_layer(name)
        moving = (
            {id(layer.moving_mean), id(layer.moving_variance)}
            if isinstance(layer, keras.layers.BatchNormalization)
            else set()
        )
        total += sum(
            int(np.prod(v.shape)) for v in layer.weights if id(v) not in moving
        )
    return total


def set_extra_skip_alpha(model, alpha: float) -> None:
    """Sets the shared multiplier of ``model``'s extra skip paths.

    >>> set_extra_skip_alpha(skip, 0.0)   # the paths no longer contribute
    """
    _alpha_layer(model).alpha.assign(_check_alpha(alpha, "alpha"))


def get_extra_skip_alpha(model) -> float:
    """The current multiplier of ``model``'s extra skip paths.

    >>> get_extra_skip_alpha(add_extra_skips(model, alpha=0.5))
    0.5
    """
    return float(ops.convert_to_numpy(_alpha_layer(model).alpha))


class ExtraSkipFade(keras.callbacks.Callback):
    """Sets the extra skip paths' multiplier during ``fit`` from a schedule.

    Args:
        schedule: ``fn(epoch) -> alpha`` (``per="epoch"``, set at the start of
            each epoch) or ``fn(step) -> alpha`` (``per="step"``, set before
            each batch); a number is a constant. Both count from 0 at the
            start of this ``fit``, so a ticket retrained from a rewind epoch
            k > 0 follows the schedule from its first value. Default: the
            constant 1 (ToST's released setting).
        per: ``"epoch"`` or ``"step"``.

    The value in force is logged per epoch as ``extra_skip_alpha``. On JAX a
    per-step value that changes costs a state sync per step (Keras holds the
    live variables outside the model during an epoch); per-epoch schedules cost
    nothing. Deep-copyable (holds no model until ``set_model``).

    Example (the "ghost" paths, gone after 10 epochs):

    >>> fade = ExtraSkipFade(lambda epoch: max(0.0, 1.0 - epoch / 10))
    >>> skip_model.fit(x, y, epochs=30, callbacks=[fade])
    """

    def __init__(self, schedule=1.0, per: str = "epoch"):
        super().__init__()
        if per not in ("epoch", "step"):
            raise ConfigError(f"per must be 'epoch' or 'step'; got {per!r}.")
        if not callable(schedule):
            _check_alpha(schedule, "schedule")
        self.schedule = schedule
        self.per = per
        self._step = 0
        self._epoch = 0
        self._current = None

    def on_train_begin(self, logs=None):
        _alpha_layer(self.model)  # fails early on a model without extra paths
        self._step = 0
        self._epoch = 0
        self._current = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.per == "epoch":
            self._set(self._value(self._epoch))

    def on_train_batch_begin(self, batch, logs=None):
        if self.per == "step":
            self._set(self._value(self._step))
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        self._epoch += 1
        if logs is not None and self._current is not None:
            logs["extra_skip_alpha"] = self._current

    def _value(self, index: int) -> float:
        value = self.schedule(index) if callable(self.schedule) else self.schedule
        return _check_alpha(value, f"schedule({index})")

    def _set(self, value: float) -> None:
        if value == self._current:
            return
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:  # JAX: write into the live state, not a stale copy
            sync()
        _alpha_layer(self.model).alpha.assign(value)
        self._current = value


class LinearFade:
    """The schedule ``start * max(0, 1 - i / epochs)``: the paper's "ghost"
    paths, gone after ``epochs`` (``retrain.skip_fade_epochs``). A plain
    object, so an :class:`ExtraSkipFade` holding it deep-copies.

    >>> [LinearFade(1.0, 4)(i) for i in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """

    def __init__(self, start: float, epochs: int):
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"epochs must be an int >= 1; got {epochs!r}.")
        self.start = _check_alpha(start, "start")
        self.epochs = epochs

    def __call__(self, index: int) -> float:
        return self.start * max(0.0, 1.0 - index / self.epochs)


# ------------------------------------------------------------------ internals


class _Rewire:
    """``clone_model``'s ``call_function``: calls each cloned layer like the
    original does and splices the extra paths in around ``bn1`` and ``out``."""

    def __init__(self, model, blocks: dict, scale: SkipScale, bn_gamma: float):
        self.blocks = blocks
        self.scale = scale
        self.bn_gamma = bn_gamma
        names = _layer_names(model)
        self.entry = {}  # the first layer of each block's conv1 branch
        for prefix in blocks:
            pad = prefix + "_conv1_pad"
            self.entry[pad if pad in names else prefix + "_conv1"] = prefix
        self.inputs = {}
        self.middles = {}

    def __call__(self, layer, *args, **kwargs):
        name = layer.name
        if name in self.entry:
            self.inputs[self.entry[name]] = args[0]
        prefix, _, part = name.rpartition("_")
        if prefix not in self.blocks:
            return layer(*args, **kwargs)
        planes, strides = self.blocks[prefix]
        if part == "bn1":
            out = layer(*args, **kwargs)
            path = self._path(self.inputs[prefix], planes, strides, prefix + "_skip1")
            return keras.layers.Add(name=prefix + "_skip1_add")([out, path])
        if part == "relu1":
            self.middles[prefix] = layer(*args, **kwargs)
            return self.middles[prefix]
        if part == "out":
            path = self._path(self.middles[prefix], planes, 1, prefix + "_skip2")
            total = keras.layers.Add(name=prefix + "_skip2_add")([args[0], path])
            return layer(total, *args[1:], **kwargs)
        return layer(*args, **kwargs)

    def _path(self, x, planes: int, strides: int, name: str):
        y = keras.layers.Conv2D(
            planes,
            1,
            strides=strides,
            padding="valid",
            use_bias=False,
            kernel_initializer=keras.initializers.Constant(KERNEL_INIT),
            name=name + "_conv",
        )(x)
        y = keras.layers.BatchNormalization(
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            gamma_initializer=keras.initializers.Constant(self.bn_gamma),
            name=name + "_bn",
        )(y)
        return self.scale(y)


def _basic_blocks(model) -> dict[str, tuple[int, int]]:
    """``{block prefix: (planes, stride)}`` of the basic blocks, in order."""
    try:
        architecture = describe(model)
        prefixes = [b.name for s in architecture.stages for b in s.blocks]
        source = f"its topology ({architecture.name})"
    except ValueError:
        prefixes = [
            n[: -len("_conv1")]
            for n in _layer_names(model)
            if re.fullmatch(r"stage\d+_block\d+_conv1", n)
        ]
        source = "its layer names"
    names = _layer_names(model)
    blocks = {}
    for prefix in prefixes:
        if all(prefix + part in names for part in _BASIC_PARTS) and (
            prefix + "_conv3" not in names
        ):
            conv1 = names[prefix + "_conv1"]
            blocks[prefix] = (int(conv1.filters), int(conv1.strides[0]))
    if not blocks:
        raise ConfigError(
            f"Extra skip connections need residual basic blocks (conv1-bn1-relu1-"
            f"conv2-bn2 + shortcut, as in the CIFAR ResNets and resnet18/26/34), "
            f"and {model.name!r} has none according to {source}."
        )
    return blocks


def _layer_names(model) -> dict:
    return {layer.name: layer for layer in model.layers}


def _alpha_layer(model) -> SkipScale:
    for layer in model.layers:
        if isinstance(layer, SkipScale):
            return layer
    raise ConfigError(
        f"{model.name!r} has no extra skip paths; add them with "
        "keras_lottery.tweaks.skips.add_extra_skips(model)."
    )


def _check_alpha(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ConfigError(f"{what} must be a number; got {value!r}.")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{what} must be finite; got {value!r}.")
    return float(value)
