"""Optional dependencies of the export formats, with one-line install hints.

Example:

>>> tf2onnx = require("tf2onnx", extra="onnx")
"""

from __future__ import annotations

import importlib

from keras_lottery.errors import MissingExtraError


def require(module: str, extra: str):
    """Imports ``module``; raises :class:`MissingExtraError` naming the extra
    that installs it when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(
            f"{module} is not installed: pip install 'keras-lottery[{extra}]'"
        ) from error
