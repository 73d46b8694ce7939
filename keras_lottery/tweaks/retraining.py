"""Retraining a ticket with tweaks: the ``retrain`` section as one plan.

:class:`RetrainPlan` composes the tweaks a :class:`~keras_lottery.config.RetrainConfig`
names (hooks in :mod:`keras_lottery.tweaks.registry`) in a fixed order: model
transforms (soft activation, then extra skips), the loss (label smoothing),
the training wrapper (KD). Every ticket-retraining phase uses it the same way:

1. ``prepared = plan.prepare(model, compile_config, teacher)``: the model to
   ``fit`` (a transformed copy of ``model``, maybe inside a ``Distiller``) and
   its compile config;
2. train ``prepared.trainee`` (``training.train_from_step``);
3. ``plan.finish(prepared, model)``: the trained values of ``model``'s layers
   are written back into ``model`` (by layer name), so the ticket, its
   sparsity and the next pruning round read the base network; the extra skip
   paths are dense and not part of the ticket.

LRsI (``lrsi``) rescales the dense initialization the ticket rewinds to before
the masks are applied: :meth:`RetrainPlan.rescale`.

Example:

>>> plan = RetrainPlan(RetrainConfig(tweaks=["swish", "label_smoothing"]))
>>> plan.check(model, has_teacher=False)         # misfits, before training
>>> prepared = plan.prepare(model, model.get_compile_config())
>>> train_from_step(prepared.trainee, k, compile_config=prepared.compile_config, ...)
>>> plan.finish(prepared, model)
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery.config import RetrainConfig
from keras_lottery.errors import ConfigError
from keras_lottery.pruning import sync_state
from keras_lottery.training import assign_all
from keras_lottery.tweaks import registry

#: Settings added after retrain folders were first named, with their defaults:
#: left out of :func:`settings_name` at the default, so existing folders keep
#: their names (and finished retrainings are not run again).
_ADDED_SETTINGS = {"skip_bn_gamma": 1.0, "skip_fade_epochs": 0}

#: The order hooks compose in, by tweak kind.
_TRANSFORM_ORDER = ("activation", "architecture")


@dataclass
class Prepared:
    """What one retraining phase trains: ``trainee`` (compiled from
    ``compile_config`` by the caller), the transformed ``student`` inside it,
    and the tweaks' extra ``callbacks``."""

    trainee: keras.Model
    student: keras.Model
    compile_config: dict
    callbacks: list = field(default_factory=list)


class RetrainPlan:
    """The tweaks of ``settings`` (a ``RetrainConfig``), ready to apply.

    A plan without tweaks is falsy and :meth:`prepare` returns the model as it
    is, so callers need no special case.
    """

    def __init__(self, settings: RetrainConfig | None = None):
        self.settings = settings if settings is not None else RetrainConfig()
        self.tweaks = [registry.get(name) for name in self.settings.tweaks]

    @classmethod
    def from_config(cls, config) -> RetrainPlan:
        """The plan of a :class:`~keras_lottery.config.RunConfig`'s ``retrain``."""
        return cls(config.retrain)

    def __bool__(self) -> bool:
        return bool(self.tweaks)

    def __repr__(self) -> str:
        return f"RetrainPlan({self.settings.tweaks})"

    @property
    def needs_teacher(self) -> bool:
        return any(t.needs_teacher for t in self.tweaks)

    @property
    def rescales_init(self) -> bool:
        return any(t.kind == "init" for t in self.tweaks)

    @property
    def transforms(self) -> bool:
        """Whether a tweak changes the network (soft activation, extra skips):
        then the trained network is not the ticket's, and phases save its
        state as ``transformed.npz``."""
        return any(t.kind in _TRANSFORM_ORDER for t in self.tweaks)

    # ------------------------------------------------------------------ checks

    def check(self, model, has_teacher: bool) -> None:
        """Raises :class:`ConfigError` naming ``retrain.tweaks`` if a tweak does
        not fit: KD without a trained dense network, a transform the model
        does not support (extra skips without residual basic blocks). Builds
        the transformed model once and discards it."""
        if self.needs_teacher and not has_teacher:
            raise ConfigError(
                "'retrain.tweaks' names kd, whose teacher is the run's trained "
                "dense network (IMP round 0): this run has none."
            )
        self.transform(model)

    def transform(self, model):
        """``model`` through every model transform, in order (a new model when
        there is one)."""
        out = model
        for kind in _TRANSFORM_ORDER:
            for tweak in (t for t in self.tweaks if t.kind == kind):
                try:
                    out = tweak.transform(out, self.settings)
                except ImportError as error:
                    raise ConfigError(
                        f"'retrain.tweaks' names {tweak.name!r}, whose module is "
                        f"not available in this version: {error}."
                    ) from error
                except ValueError as error:
                    raise ConfigError(
                        f"'retrain.tweaks' names {tweak.name!r}, which does not "
                        f"fit this model: {error}"
                    ) from error
        return out

    # ------------------------------------------------------------------ phases

    def compile_config(self, compile_config: dict) -> dict:
        """``compile_config`` with the loss tweaks applied (from_logits as the
        compiled loss says)."""
        config = copy.deepcopy(compile_config)
        loss_tweaks = [t for t in self.tweaks if t.kind == "loss"]
        if not loss_tweaks:
            return config
        loss = config.get("loss")
        from_logits = bool(
            isinstance(loss, dict) and loss.get("config", {}).get("from_logits")
        )
        for tweak in loss_tweaks:
            loss = tweak.loss(loss, self.settings, from_logits)
        config["loss"] = keras.saving.serialize_keras_object(loss)
        return config

    def prepare(
        self, model, compile_config: dict, teacher: Callable | keras.Model = None
    ) -> Prepared:
        """The model a retraining phase fits, and its compile config.
        ``teacher``: the trained dense network, or a zero-argument function
        returning it (called only when a tweak needs it)."""
        student = self.transform(model)
        trainee = student
        for tweak in (t for t in self.tweaks if t.kind == "teacher"):
            if teacher is None:
                raise ConfigError(
                    f"'retrain.tweaks' names {tweak.name!r}: pass the trained dense "
                    "network as teacher."
                )
            if callable(teacher) and not isinstance(teacher, keras.Model):
                teacher = teacher()
            trainee = tweak.wrap(trainee, teacher, self.settings)
        callbacks = [
            c for t in self.tweaks for c in t.callbacks(student, self.settings)
        ]
        config = self.compile_config(compile_config)
        return Prepared(trainee, student, config, callbacks)

    def finish(self, prepared: Prepared, model) -> None:
        """Writes the trained values of ``model``'s layers from the prepared
        student back into ``model`` (nothing to do without a transform)."""
        sync_state(prepared.trainee)
        if prepared.student is not model:
            copy_layer_weights(prepared.student, model)

    def rescale(self, model, data) -> None:
        """LRsI: rescales ``model``'s weights in place (call it on the dense,
        unmasked initialization, then apply the masks)."""
        for tweak in (t for t in self.tweaks if t.kind == "init"):
            tweak.rescale(model, data, self.settings)

    def trained_network(self, model, state) -> keras.Model:
        """The transformed network of ``model`` with ``state`` (its weights,
        in ``self.transform(model).weights`` order: a phase's
        ``transformed.npz``).

        >>> network = plan.trained_network(model, load_arrays("transformed.npz"))
        """
        network = self.transform(model)
        assign_all(network, state)
        return network

    def apply_ticket(self, model, ticket, data) -> None:
        """Writes ``ticket`` (a :class:`~keras_lottery.ticket.Ticket`) into
        ``model``. With LRsI its weights are first rescaled on ``data`` (as for
        :meth:`rescale`) with every weight present, since GradInit sees the
        dense initialization, and masked after.

        >>> plan.apply_ticket(model, Ticket.load("ticket.npz"), (x, y))
        """
        if not self.rescales_init:
            ticket.apply(model)
            return
        ones = {name: np.ones_like(mask, bool) for name, mask in ticket.masks.items()}
        dataclasses.replace(ticket, masks=ones).apply(model)
        self.rescale(model, data)
        pruning.set_masks(model, ticket.masks)


def settings_name(settings: RetrainConfig) -> str:
    """``retrain_<12 hex digits>``: the sha256 of the ``retrain`` settings
    (every field, so a changed setting names another folder).

    >>> settings_name(RetrainConfig(tweaks=["swish"]))
    'retrain_...'
    """
    fields = dataclasses.asdict(settings)
    for name, default in _ADDED_SETTINGS.items():
        if fields[name] == default:
            del fields[name]
    canonical = json.dumps(fields, sort_keys=True)
    return "retrain_" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def label(settings: RetrainConfig) -> str:
    """A short name of the tweaks for tables: ``swish+kd`` (``vanilla``),
    with ``@<6 hex>`` of the settings when others than ``tweaks`` differ
    from their defaults."""
    name = "+".join(settings.tweaks) or "vanilla"
    defaults = dataclasses.replace(RetrainConfig(), tweaks=list(settings.tweaks))
    if settings != defaults:
        name += "@" + settings_name(settings)[len("retrain_") :][:6]
    return name


def copy_layer_weights(source, target) -> None:
    """Assigns every weight of ``target``'s layers from the layer of the same
    name in ``source`` (a transformed copy of ``target``); a layer missing
    there, or with other weights, is a ``ValueError`` naming it."""
    by_name = {layer.name: layer for layer in _leaves(source)}
    for layer in _leaves(target):
        twin = by_name.get(layer.name)
        if twin is None or len(twin.weights) != len(layer.weights):
            raise ValueError(
                f"The retrained model has no layer {layer.name!r} with "
                f"{len(layer.weights)} weights to copy back into the ticket's model."
            )
        for variable, value in zip(layer.weights, twin.weights, strict=True):
            variable.assign(value.value)


def _leaves(model):
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if layer.weights and not isinstance(layer, keras.Model)
    ]
