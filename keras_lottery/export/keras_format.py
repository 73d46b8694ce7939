"""A ticket as a ``.keras`` file of plain Keras layers (masks baked in).

It loads with ``keras.saving.load_model`` without keras_lottery.

Example:

>>> export_keras(model, "ticket.keras")
>>> keras.saving.load_model("ticket.keras")
"""

from __future__ import annotations

import os

from keras_lottery.errors import ConfigError
from keras_lottery.export._files import staged_output
from keras_lottery.export.plain import strip_masks


def export_keras(model, path, *, overwrite: bool = False):
    """Strips the masks and saves the plain model to ``path`` (``.keras``
    suffix required; atomic; an existing ``path`` raises unless ``overwrite``).
    Returns the plain model."""
    if not os.fspath(path).endswith(".keras"):
        raise ConfigError(f"A Keras model file must end in .keras; got {path}.")
    with staged_output(path, overwrite) as target:
        plain = strip_masks(model)
        plain.save(target)
    return plain
