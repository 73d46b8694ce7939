"""Sparse-retraining tweaks by name (``retrain.tweaks``), each with its hooks.

A :class:`Tweak` changes how a ticket is retrained at one or more points:

- ``transform(model, settings)``: a new model to train (soft activations,
  extra skip paths), with the ticket's layers, weights and masks;
- ``loss(loss, settings, from_logits)``: the loss to train with (label
  smoothing);
- ``wrap(model, teacher, settings)``: a training wrapper (the KD ticket's
  :class:`~keras_lottery.tweaks.distill.Distiller`); ``needs_teacher``;
- ``rescale(model, data, settings)``: rescales the dense initialization the
  ticket rewinds to, before masking (LRsI);
- ``callbacks(model, settings)``: extra Keras callbacks.

:class:`~keras_lottery.tweaks.retraining.RetrainPlan` composes the tweaks a
config names. The modules of the tweaks are imported when a hook runs, so the
config can check names without Keras models.

Example:

>>> registry.names()
('swish', 'mish', 'elu', 'softplus', 'gelu', 'pswish', 'extra_skips', ...)
>>> registry.get("label_smoothing").kind
'loss'
"""

from __future__ import annotations

#: The soft activations that replace ReLU (``keras_lottery.tweaks.activations``).
SOFT_ACTIVATIONS = ("swish", "mish", "elu", "softplus", "gelu", "pswish")


class Tweak:
    """A named tweak; ``kind`` says which hook it implements (``activation``,
    ``architecture``, ``loss``, ``teacher``, ``init``). Hooks not overridden
    leave their input unchanged."""

    name: str = ""
    kind: str = ""
    needs_teacher: bool = False

    def transform(self, model, settings):
        return model

    def loss(self, loss, settings, from_logits: bool):
        return loss

    def wrap(self, model, teacher, settings):
        return model

    def rescale(self, model, data, settings) -> None:
        """Rescales ``model``'s (unmasked) weights in place."""

    def callbacks(self, model, settings) -> list:
        return []


class SoftActivation(Tweak):
    """Every ReLU of the model becomes ``name`` for the whole retraining."""

    kind = "activation"

    def __init__(self, name: str):
        self.name = name

    def transform(self, model, settings):
        from keras_lottery.tweaks.activations import with_soft_activations

        return with_soft_activations(model, activation=self.name)


class ExtraSkips(Tweak):
    """Dense 1x1-conv + BN paths per residual basic block (Jaiswal et al.)."""

    name, kind = "extra_skips", "architecture"

    def transform(self, model, settings):
        from keras_lottery.tweaks.skips import add_extra_skips

        return add_extra_skips(
            model, alpha=settings.skip_alpha, bn_gamma=settings.skip_bn_gamma
        )

    def callbacks(self, model, settings) -> list:
        if not settings.skip_fade_epochs:
            return []
        from keras_lottery.tweaks.skips import ExtraSkipFade, LinearFade

        return [
            ExtraSkipFade(LinearFade(settings.skip_alpha, settings.skip_fade_epochs))
        ]


class LabelSmoothing(Tweak):
    """``1 - alpha`` on the true class, ``alpha / (C - 1)`` elsewhere."""

    name, kind = "label_smoothing", "loss"

    def loss(self, loss, settings, from_logits):
        from keras_lottery.tweaks.losses import SmoothedSparseCategoricalCrossentropy

        return SmoothedSparseCategoricalCrossentropy(
            settings.label_smoothing, from_logits=from_logits
        )


class KnowledgeDistillation(Tweak):
    """The KD ticket: the run's trained dense network teaches the ticket."""

    name, kind, needs_teacher = "kd", "teacher", True

    def wrap(self, model, teacher, settings):
        from keras_lottery.tweaks.distill import Distiller

        return Distiller(
            model, teacher, temperature=settings.kd_temperature, alpha=settings.kd_alpha
        )


class LayerwiseRescaledInit(Tweak):
    """LRsI (GradInit): one learned scale per weight tensor, before masking."""

    name, kind = "lrsi", "init"

    def rescale(self, model, data, settings) -> None:
        from keras_lottery.tweaks.lrsi import lrsi_rescale

        lrsi_rescale(model, data, iterations=settings.lrsi_iterations)


_REGISTRY: dict[str, Tweak] = {}


def register(tweak: Tweak) -> Tweak:
    """Makes ``tweak`` available by its name in ``retrain.tweaks``."""
    if not tweak.name or tweak.name in _REGISTRY:
        raise ValueError(f"A tweak needs a new, non-empty name; got {tweak.name!r}.")
    _REGISTRY[tweak.name] = tweak
    return tweak


for _tweak in (
    *(SoftActivation(name) for name in SOFT_ACTIVATIONS),
    ExtraSkips(),
    LabelSmoothing(),
    KnowledgeDistillation(),
    LayerwiseRescaledInit(),
):
    register(_tweak)


def names() -> tuple[str, ...]:
    """The registered tweaks, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Tweak:
    """The tweak registered as ``name`` (``ValueError`` listing the names)."""
    if name not in _REGISTRY:
        raise ValueError(f"Unknown tweak {name!r}; allowed: {list(_REGISTRY)}.")
    return _REGISTRY[name]
