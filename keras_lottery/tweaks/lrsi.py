"""LRsI, layer-wise rescaled initialization: GradInit as ToST runs it.

Jaiswal et al. (2021) rescale the initialization a ticket rewinds to with
GradInit (Zhu et al., 2021) before retraining it. :func:`lrsi_rescale` learns
one positive scale per weight and bias tensor of every Conv/Dense/BatchNorm
layer (kernels, biases, BN gamma and beta), then multiplies the model's
variables by them in place. Each iteration, on two batches ``A`` and ``B``
sharing their first half:

* ``g`` = the gradient of the loss on ``A`` w.r.t. those tensors;
* if ``||g|| > grad_norm_bound`` (gamma = 1): a *constraint* step lowers
  ``||g||``;
* otherwise an *objective* step lowers ``L_B(theta - eta * g / ||g||) / eta``
  (``g`` held constant: the step's direction is not differentiated through,
  as in ToST's ``set_param``).

The scales move by the rescale-Adam of the GradInit code: the scale's gradient
is clipped to ``[-clip, clip]``, constraint and objective steps keep their own
first moments and share the second, and each scale is floored at ``min_scale``
(weights) or ``bias_min_scale`` (biases, BN beta) after every step; a tensor
that is all zeros (or whose scale reached 0) is not rescaled. BatchNorm layers
use batch statistics (``training=True``) and their moving statistics are left
untouched. Masks are never changed: a masked layer's stored kernel is scaled and
the loss sees its effective (masked) kernel, so pruned entries stay zero.

Gradients of gradients are needed, so this runs on the TensorFlow and JAX
backends (``tf.GradientTape``, ``jax.grad`` over ``Model.stateless_call``); on
torch it raises :class:`~keras_lottery.errors.ConfigError`.

Example:

>>> model = keras_lottery.models.get("cifar_resnet_20", classifier_activation=None)
>>> scales = lrsi_rescale(model, (x_train, y_train))   # 180 iterations, eta 0.1
>>> min(scales.values()) >= 0.0
True
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from keras_lottery.errors import ConfigError, DataError

#: Layer classes whose weight and bias tensors get a scale (subclasses too:
#: the masked and soft-masked twins).
SCALED_LAYERS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.BatchNormalization,
)
_WEIGHTS = ("kernel", "gamma")
_BIASES = ("bias", "beta")
_BETAS = (0.9, 0.999)
_EPSILON = 1e-8
logger = logging.getLogger(__name__)


def lrsi_rescale(
    model,
    data,
    *,
    iterations: int = 180,
    eta: float = 0.1,
    learning_rate: float = 1e-2,
    min_scale: float = 0.01,
    bias_min_scale: float = 0.0,
    clip: float = 1.0,
    grad_norm_bound: float = 1.0,
    seed: int = 0,
    batch_size: int = 128,
    loss=None,
) -> dict[str, float]:
    """Learns GradInit's scales on ``data`` and applies them to ``model``.

    Args:
        model: a built Keras model (any kind; Conv/Dense/BN layers are scaled).
        data: ``(x, y)`` arrays (shuffled batches of ``batch_size`` drawn with
            ``seed``) or an iterable of ``(x, y[, ...])`` batches, restarted
            when exhausted (ToST draws three loader batches per iteration).
        iterations, eta, learning_rate, min_scale, bias_min_scale, clip,
        grad_norm_bound: GradInit's settings, defaults as ToST runs it.
        loss: ``fn(y_true, y_pred) -> scalar``; default: cross-entropy, on
            logits unless the model's last layer ends in a softmax, with
            integer or one-hot labels.

    Returns:
        ``{variable path: scale}`` of the rescaled tensors (all-zero tensors,
        typically biases, are left out: there is nothing to rescale).

    Raises:
        ConfigError: a setting out of range, or the torch backend.
        DataError: ``data`` yields no batches or mismatched ``x``/``y``.

    Example:

    >>> scales = lrsi_rescale(model, dataset.take(200), iterations=180)
    >>> scales["stem_conv/kernel"]
    0.83...
    """
    settings = _Settings(
        iterations, eta, learning_rate, min_scale, bias_min_scale, clip, grad_norm_bound
    )
    problem = _Problem(model, loss, eta, compiled=_worth_compiling(iterations))
    batches = _batches(data, batch_size, seed)
    scales, constraint_steps = _optimize(problem, batches, settings)
    problem.apply(scales)
    logger.info(
        "LRsI: %d iterations (%d constraint steps), %d scales in [%.4g, %.4g]",
        iterations,
        constraint_steps,
        int(problem.active.sum()),
        float(scales[problem.active].min()) if problem.active.any() else 1.0,
        float(scales[problem.active].max()) if problem.active.any() else 1.0,
    )
    return {
        problem.variables[i].path: float(scales[i])
        for i in range(len(scales))
        if problem.active[i]
    }


def lrsi_objective(model, x, y, *, eta: float = 0.1, loss=None) -> float:
    """GradInit's objective at ``model``'s current weights on one batch:
    ``L(theta - eta * g / ||g||) / eta`` with ``g`` the gradient of the loss on
    the same batch. It is what :func:`lrsi_rescale` lowers (on fresh batches).

    >>> before = lrsi_objective(model, x[:64], y[:64])
    """
    problem = _Problem(model, loss, eta, compiled=_worth_compiling(1))
    x, y = _as_batch((x, y))
    ones = np.ones(len(problem.variables), "float32")
    _, _, unit = problem.first(ones, x, y)
    value, _ = problem.objective(ones, unit, x, y)
    return float(ops.convert_to_numpy(value))


# ------------------------------------------------------------------ settings


@dataclass(frozen=True)
class _Settings:
    iterations: int
    eta: float
    learning_rate: float
    min_scale: float
    bias_min_scale: float
    clip: float
    grad_norm_bound: float

    def __post_init__(self):
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int):
            raise ConfigError(f"iterations must be an int; got {self.iterations!r}.")
        if self.iterations < 1:
            raise ConfigError(f"iterations must be >= 1; got {self.iterations}.")
        for name in ("eta", "learning_rate", "min_scale", "clip", "grad_norm_bound"):
            _check_number(getattr(self, name), name, positive=True)
        _check_number(self.bias_min_scale, "bias_min_scale", positive=False)


def _check_number(value, name: str, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    ok = ok and math.isfinite(float(value))
    ok = ok and (float(value) > 0 if positive else float(value) >= 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ConfigError(f"{name} must be a finite number {bound}; got {value!r}.")


# ------------------------------------------------------------------ the problem


class _Problem:
    """The model as a function of one scale per tensor, with its gradients.

    ``first``: the loss on a batch, ``||g||`` and ``g / ||g||`` at the scales;
    ``constraint``: ``||g||`` and its gradient w.r.t. the scales;
    ``objective``: ``L(scaled - eta * unit) / eta`` and its gradient.
    """

    def __init__(self, model, loss, eta: float, compiled: bool = True):
        if not model.built:
            raise ConfigError("lrsi_rescale needs a built model (call it once).")
        self.model = model
        self.eta = float(eta)
        self.variables = _scaled_variables(model)
        if not self.variables:
            raise ConfigError(
                f"{model.name!r} has no trainable Conv/Dense/BatchNorm weights "
                "to rescale."
            )
        positions = {id(v): i for i, v in enumerate(model.trainable_variables)}
        self.positions = [positions[id(v)] for v in self.variables]
        self.initial = [np.array(ops.convert_to_numpy(v)) for v in self.variables]
        self.active = np.array([np.any(v != 0) for v in self.initial])
        self.is_bias = np.array([_short_name(v) in _BIASES for v in self.variables])
        self.loss = loss or _default_loss(model)
        self.first, self.constraint, self.objective = _compile(self, compiled)

    def loss_at(self, values, x, y):
        """The loss with ``values`` in place of the scaled tensors."""
        trainable = [v.value for v in self.model.trainable_variables]
        for position, value in zip(self.positions, values, strict=True):
            trainable[position] = value
        non_trainable = [v.value for v in self.model.non_trainable_variables]
        outputs, _ = self.model.stateless_call(
            trainable, non_trainable, x, training=True
        )
        return self.loss(y, outputs)

    def scaled(self, scales):
        return [
            ops.multiply(scales[i], ops.convert_to_tensor(value))
            for i, value in enumerate(self.initial)
        ]

    def apply(self, scales) -> None:
        for variable, value, scale in zip(
            self.variables, self.initial, scales, strict=True
        ):
            variable.assign((value * scale).astype(value.dtype))


def _scaled_variables(model) -> list:
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=False):
        if not isinstance(layer, SCALED_LAYERS) or not layer.trainable:
            continue
        for variable in layer.trainable_weights:
            if _short_name(variable) in _WEIGHTS + _BIASES and id(variable) not in seen:
                seen.add(id(variable))
                found.append(variable)
    return found


def _short_name(variable) -> str:
    return variable.path.rsplit("/", 1)[-1]


def _default_loss(model):
    last = model.layers[-1]
    from_logits = getattr(last, "activation", None) is not keras.activations.softmax

    def cross_entropy(y, outputs):
        if len(y.shape) == len(outputs.shape) and y.shape[-1] == outputs.shape[-1]:
            values = keras.losses.categorical_crossentropy(
                y, outputs, from_logits=from_logits
            )
        else:
            values = keras.losses.sparse_categorical_crossentropy(
                y, outputs, from_logits=from_logits
            )
        return ops.mean(values)

    return cross_entropy


def _norm(grads):
    return ops.sqrt(sum(ops.sum(ops.square(g)) for g in grads))


def _unit(grads):
    norm = _norm(grads)
    safe = ops.maximum(norm, 1e-12)
    return norm, [ops.divide(g, safe) for g in grads]


def _compile(problem: _Problem, compiled: bool):
    """The three functions of :class:`_Problem` for the current backend
    (``tf.function``/``jax.jit``-compiled if ``compiled``)."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        value_and_grad, stop = _tf_value_and_grad, tf.stop_gradient
        jit = tf.function(reduce_retracing=True)
    elif backend == "jax":
        import jax

        value_and_grad, jit, stop = jax.value_and_grad, jax.jit, jax.lax.stop_gradient
    else:
        raise ConfigError(
            f"lrsi_rescale needs gradients of gradients, implemented for the "
            f"tensorflow and jax backends; KERAS_BACKEND is {backend!r}."
        )
    loss_grad = value_and_grad(problem.loss_at)
    eta = problem.eta

    def first(scales, x, y):
        loss, grads = loss_grad(problem.scaled(scales), x, y)
        norm, unit = _unit(grads)
        return loss, norm, unit

    def gradient_norm(scales, x, y):
        return _norm(loss_grad(problem.scaled(scales), x, y)[1])

    def stepped_loss(scales, unit, x, y):
        values = [
            ops.subtract(v, ops.multiply(eta, stop(u)))
            for v, u in zip(problem.scaled(scales), unit, strict=True)
        ]
        return ops.divide(problem.loss_at(values, x, y), eta)

    constraint = value_and_grad(gradient_norm)
    objective = value_and_grad(stepped_loss)
    if not compiled:
        return first, constraint, objective
    return jit(first), jit(constraint), jit(objective)


def _worth_compiling(iterations: int) -> bool:
    """JAX runs op by op very slowly, so it always compiles; TensorFlow's
    tracing (about 2 s for a tiny model) pays off from about 20 iterations."""
    return keras.backend.backend() == "jax" or iterations >= 20


def _tf_value_and_grad(fn):
    """``jax.value_and_grad`` for TensorFlow (w.r.t. the first argument, a
    tensor or a list of tensors); nests, so gradients of gradients work."""
    import tensorflow as tf

    def wrapped(first, *args):
        as_list = isinstance(first, list | tuple)
        watched = list(first) if as_list else [tf.convert_to_tensor(first)]
        with tf.GradientTape() as tape:
            tape.watch(watched)
            value = fn(watched if as_list else watched[0], *args)
        grads = tape.gradient(
            value, watched, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return value, grads if as_list else grads[0]

    return wrapped


# ------------------------------------------------------------------ optimizer


def _optimize(problem: _Problem, batches, settings: _Settings):
    """GradInit's loop with the rescale-Adam of its code, on numpy scales.
    Returns the scales and the number of constraint steps taken."""
    n = len(problem.variables)
    scales = np.ones(n, "float32")
    floor = np.where(problem.is_bias, settings.bias_min_scale, settings.min_scale)
    moments = {"objective": np.zeros(n), "constraint": np.zeros(n)}
    steps = {"objective": np.zeros(n), "constraint": np.zeros(n)}
    second = np.zeros(n)
    beta1, beta2 = _BETAS
    constraint_steps = 0
    for _ in range(settings.iterations):
        x0, y0 = next(batches)
        x1, y1 = next(batches)
        x_a, y_a = np.concatenate([x0, x1]), np.concatenate([y0, y1])
        _, norm, unit = problem.first(scales, x_a, y_a)
        if float(ops.convert_to_numpy(norm)) > settings.grad_norm_bound:
            kind = "constraint"
            constraint_steps += 1
            _, grad = problem.constraint(scales, x_a, y_a)
        else:
            kind = "objective"
            x2, y2 = next(batches)
            x_b, y_b = np.concatenate([x0, x2]), np.concatenate([y0, y2])
            _, grad = problem.objective(scales, unit, x_b, y_b)
        grad = np.clip(
            np.asarray(ops.convert_to_numpy(grad), "float64"),
            -settings.clip,
            settings.clip,
        )
        live = problem.active & (scales > 0)  # the code skips tensors of norm 0
        steps[kind][live] += 1
        moments[kind][live] = beta1 * moments[kind][live] + (1 - beta1) * grad[live]
        second[live] = beta2 * second[live] + (1 - beta2) * grad[live] ** 2
        total = steps["objective"] + steps["constraint"]
        with np.errstate(divide="ignore", invalid="ignore"):
            denom = np.sqrt(second / (1 - beta2**total)) + _EPSILON
            step = settings.learning_rate / (1 - beta1 ** steps[kind])
            moved = np.maximum(scales - step * moments[kind] / denom, floor)
        scales = np.where(live, moved, scales).astype("float32")
    return scales, constraint_steps


# ------------------------------------------------------------------ data


def _batches(data, batch_size: int, seed: int):
    """An endless iterator of ``(x, y)`` numpy batches over ``data``."""
    if isinstance(data, tuple) and len(data) == 2 and hasattr(data[0], "shape"):
        return _array_batches(*_as_batch(data), batch_size, seed)
    if not isinstance(data, Iterable):
        raise DataError(
            f"data must be (x, y) arrays or an iterable of (x, y) batches; got "
            f"{type(data).__name__}."
        )
    return _cycled(data)


def _array_batches(x, y, batch_size: int, seed: int):
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ConfigError(f"batch_size must be an int >= 1; got {batch_size!r}.")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            yield x[index], y[index]


def _cycled(data):
    while True:
        empty = True
        for batch in data:
            empty = False
            yield _as_batch(batch)
        if empty:
            raise DataError("data yielded no batches (an exhausted generator?).")


def _as_batch(batch):
    if not isinstance(batch, list | tuple) or len(batch) < 2:
        raise DataError(
            f"Each batch must be (x, y[, ...]); got {type(batch).__name__}."
        )
    x, y = (np.asarray(ops.convert_to_numpy(part)) for part in batch[:2])
    if len(x) != len(y) or len(x) == 0:
        raise DataError(
            f"A batch has {len(x)} inputs and {len(y)} labels; they must match "
            "and not be empty."
        )
    if np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer):
        x = x.astype(keras.config.floatx())
    return x, y
