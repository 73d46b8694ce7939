"""Shipping a ticket: strip masks, export a SavedModel, measure the storage cost.

Example:

>>> plain = strip_masks(model)                  # standard Dense/Conv layers
>>> export_saved_model(model, "ticket_savedmodel")
>>> print(size_report(model))                   # dense vs. bitmask+nonzeros bytes
"""

from keras_lottery.export.plain import strip_masks
from keras_lottery.export.saved_model import export_saved_model
from keras_lottery.export.sizes import SizeReport, size_report, sparse_arrays

__all__ = [
    "SizeReport",
    "export_saved_model",
    "size_report",
    "sparse_arrays",
    "strip_masks",
]
