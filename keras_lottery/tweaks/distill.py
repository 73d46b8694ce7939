"""The KD ticket (Ma et al., "Good Students Play Big Lottery Better", v1 of
Jaiswal et al. 2101.03255): retrain a ticket against the trained dense network.

    loss = alpha * T**2 * KL(softmax(teacher / T) || softmax(student / T))
           + (1 - alpha) * CE(y, student)

with ``T = 5`` and ``alpha = 0.9`` (the authors' ``cifar_lt_kd.py``).
:class:`Distiller` is a ``keras.Model`` whose ``call`` is the student's and
whose ``compute_loss`` adds the distillation term, so it trains with plain
``model.fit`` on every backend, with masked students (the student's variables
are the ones trained; the teacher is frozen).

**Probabilities as logits.** The zoo's models end in softmax (recipes compile
``sparse_categorical_crossentropy`` on probabilities), so by default both
networks' outputs are read as probabilities and their logs are used as
logits: softmax is shift-invariant, so ``softmax(log(p) / T)`` is exactly the
temperature-``T`` softmax of the network's logits (up to the clipping of
``p`` at 1e-7). Pass ``from_logits=True`` for models that end in logits.

**Deviations.** The KL term is summed over classes and averaged over the
batch (the textbook KL); the authors' PyTorch ``KLDivLoss()`` default also
averages over the classes, which divides their KD term by ``C``. Evaluation
(``model.evaluate``, ``val_loss``) reports the plain student loss, without the
teacher, so validation losses and early stopping compare across tweaks.

Example:

>>> teacher = keras.models.load_model("dense.keras")
>>> distiller = Distiller(student, teacher)            # T = 5, alpha = 0.9
>>> distiller.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> distiller.fit(x, y, epochs=10)   # trains `student` in place
"""

from __future__ import annotations

import keras
from keras import ops

from keras_lottery.errors import ConfigError
from keras_lottery.layers._base import PACKAGE

#: The authors' temperature and weight of the distillation term.
DEFAULT_TEMPERATURE = 5.0
DEFAULT_ALPHA = 0.9

_EPSILON = 1e-7


def check_settings(temperature, alpha, prefix: str = "") -> tuple[float, float]:
    """``(temperature, alpha)`` as floats: ``temperature > 0``, ``alpha`` in
    [0, 1]; a :class:`ConfigError` naming ``<prefix>temperature`` or
    ``<prefix>alpha`` otherwise."""
    for key, value, ok, allowed in (
        ("temperature", temperature, lambda v: v > 0, "a number > 0"),
        ("alpha", alpha, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    ):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not ok(value):
            raise ConfigError(f"'{prefix}{key}' must be {allowed}; got {value!r}.")
    return float(temperature), float(alpha)


def as_logits(outputs, from_logits: bool):
    """``outputs`` as logits: as they are, or the log of probabilities."""
    if from_logits:
        return outputs
    return ops.log(ops.clip(outputs, _EPSILON, 1.0))


def distillation_term(teacher, student, temperature: float, from_logits=False):
    """``KL(softmax(teacher / T) || softmax(student / T))`` per example (summed
    over classes), from logits or probabilities."""
    t = ops.log_softmax(as_logits(teacher, from_logits) / temperature, axis=-1)
    s = ops.log_softmax(as_logits(student, from_logits) / temperature, axis=-1)
    return ops.sum(ops.exp(t) * (t - s), axis=-1)


def kd_loss(
    y_true,
    student,
    teacher,
    temperature: float = DEFAULT_TEMPERATURE,
    alpha: float = DEFAULT_ALPHA,
    from_logits: bool = False,
):
    """The KD ticket's loss of a batch (mean over examples) with plain
    cross-entropy on integer labels ``y_true``.

    >>> float(kd_loss([0], [[0.7, 0.3]], [[0.9, 0.1]]))
    """
    temperature, alpha = check_settings(temperature, alpha)
    student = ops.convert_to_tensor(student)
    kd = ops.mean(distillation_term(teacher, student, temperature, from_logits))
    ce = ops.mean(
        keras.losses.sparse_categorical_crossentropy(
            y_true, student, from_logits=from_logits
        )
    )
    return alpha * temperature**2 * kd + (1.0 - alpha) * ce


@keras.saving.register_keras_serializable(package=PACKAGE)
class Distiller(keras.Model):
    """Trains ``student`` with the KD ticket's loss against a frozen ``teacher``.

    The compiled loss (e.g. ``sparse_categorical_crossentropy``, or a smoothed
    one) is the ``(1 - alpha)`` part; the student's own losses (regularizers)
    are added unweighted. ``call`` is the student's, so metrics and
    ``predict`` see the student.

    Args:
        student: the model to train (masked layers welcome), trained in place.
        teacher: the trained dense network (same inputs and classes); frozen.
        temperature: ``T``.
        alpha: weight of the distillation term.
        from_logits: whether both models output logits (default: probabilities).
    """

    def __init__(
        self,
        student,
        teacher,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        from_logits: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.temperature, self.alpha = check_settings(temperature, alpha)
        self.from_logits = bool(from_logits)
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        student_loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        if not training:
            return student_loss
        teacher = ops.stop_gradient(self.teacher(x, training=False))
        kd = distillation_term(teacher, y_pred, self.temperature, self.from_logits)
        if sample_weight is not None:
            kd = kd * ops.reshape(ops.cast(sample_weight, kd.dtype), ops.shape(kd))
        regularization = sum((ops.sum(loss) for loss in self.losses), 0.0)
        # student_loss already holds the regularization; keep it at weight 1.
        return (
            (1.0 - self.alpha) * (student_loss - regularization)
            + self.alpha * self.temperature**2 * ops.mean(kd)
            + regularization
        )

    def get_config(self):
        return {
            **super().get_config(),
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "from_logits": self.from_logits,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("student", "teacher"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
