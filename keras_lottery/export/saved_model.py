"""A ticket as a TensorFlow SavedModel (plain layers, no masks).

Example:

>>> export_saved_model(model, "ticket_savedmodel")
"""

from __future__ import annotations

import os
import shutil
import tempfile

from keras_lottery.export.plain import strip_masks


def export_saved_model(model, path: str, *, overwrite: bool = False, **export_kwargs):
    """Strips the masks and exports a TensorFlow SavedModel to ``path``.

    Uses Keras's ``model.export(format="tf_saved_model")``. The export is written
    to a temporary folder beside ``path`` and renamed into place, so ``path``
    never holds a half-written model. Returns the stripped model.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
    plain = strip_masks(model)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(staging, "model")
        plain.export(target, format="tf_saved_model", verbose=False, **export_kwargs)
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return plain
