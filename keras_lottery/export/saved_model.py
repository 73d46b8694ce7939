"""A ticket as a TensorFlow SavedModel (plain layers, no masks).

The SavedModel has one endpoint, ``serve`` (also ``serving_default``), taking
one tensor named ``inputs`` and returning ``output_0``; it holds every variable
once and loads with ``tf.saved_model.load`` alone (no Keras, no keras_lottery).

Example:

>>> export_saved_model(model, "ticket_savedmodel")
>>> tf.saved_model.load("ticket_savedmodel").serve(x)
"""

from __future__ import annotations

from keras_lottery.export._files import staged_output
from keras_lottery.export._serving import check_tensorflow, input_signature
from keras_lottery.export.plain import strip_masks


def export_saved_model(model, path, *, overwrite: bool = False):
    """Strips the masks and writes a SavedModel folder to ``path``.

    Written to a temporary folder beside ``path`` and renamed into place, so
    ``path`` never holds a half-written model; an existing ``path`` raises
    :class:`~keras_lottery.errors.OutputExistsError` unless ``overwrite``.
    Returns the stripped (plain) model.
    """
    check_tensorflow("SavedModel")
    with staged_output(path, overwrite) as target:
        plain = strip_masks(model)
        write_saved_model(plain, target)
    return plain


def write_saved_model(plain, path: str) -> None:
    """Writes the SavedModel of a plain (mask-free) model to ``path``, quietly.

    Keras's ``model.export`` tracks the model, which stores every variable twice
    in the checkpoint (once as the Keras variable, once under
    ``_all_variables``): a SavedModel was ~2x its weights. An archive that only
    tracks what its endpoint uses stores each variable once.
    """
    from keras.export import ExportArchive

    archive = ExportArchive()
    archive.add_endpoint(
        "serve",
        lambda inputs: plain(inputs, training=False),
        input_signature=input_signature(plain),
    )
    archive.write_out(path, verbose=False)
