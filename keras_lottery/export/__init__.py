"""Shipping a ticket: one module per format, one entry point, measured sizes.

- :func:`export` (:mod:`.dispatch`): a Ticket or masked model to
  ``saved_model``, ``keras``, ``litert``, ``onnx`` or ``sparse-npz``;
- :func:`strip_masks` (:mod:`.plain`): the plain Keras model every format
  starts from;
- :func:`load_sparse` (:mod:`.sparse_npz`): a sparse-npz file back to a Ticket;
- :func:`size_report` (:mod:`.sizes`): dense vs. bitmask+nonzeros bytes.

The LiteRT and ONNX helpers (interpreters, sessions) live in
:mod:`keras_lottery.export.litert` and :mod:`keras_lottery.export.onnx`, which
import their optional packages only when used. User guide: docs/export.md.

Example:

>>> result = export(ticket, "ticket.tflite", format="litert", sparse=True)
>>> print(size_report(model))                   # dense vs. bitmask+nonzeros bytes
>>> ticket = load_sparse("ticket.sparse.npz")
"""

from keras_lottery.export.dispatch import FORMATS, ExportResult, export
from keras_lottery.export.keras_format import export_keras
from keras_lottery.export.plain import strip_masks
from keras_lottery.export.saved_model import export_saved_model
from keras_lottery.export.sizes import SizeReport, size_report
from keras_lottery.export.sparse_npz import load_sparse, save_sparse, sparse_arrays

__all__ = [
    "FORMATS",
    "ExportResult",
    "SizeReport",
    "export",
    "export_keras",
    "export_saved_model",
    "load_sparse",
    "save_sparse",
    "size_report",
    "sparse_arrays",
    "strip_masks",
]
