"""A ticket as a LiteRT (TFLite) flatbuffer: float32, sparse, quantized.

Conversion goes through a temporary SavedModel (:mod:`.saved_model`) and
``tf.lite.TFLiteConverter.from_saved_model``: the converter's
``from_keras_model`` and ``from_concrete_functions`` paths do not see Keras 3
variables reliably (a concrete function gave a model without its weights).

Options:

- ``sparse=True``: ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY`` stores pruned
  kernels sparsely (compressed-sparse-row tensors). Unstructured patterns get a
  ``DENSIFY`` op that expands them once when the interpreter is prepared: the
  file shrinks, the arithmetic stays dense. Fully-connected kernels whose
  nonzeros come in 1x4 blocks (along the input axis) are kept sparse and run by
  TFLite's sparse kernel.
- ``quantize="dynamic"``: dynamic-range quantization (int8 weights, float
  activations); ``quantize="float16"``: float16 weights. Both combine with
  ``sparse``.

Outputs equal the Keras model's within :data:`TOLERANCES` (tested).

Example:

>>> export_litert(model, "ticket.tflite", sparse=True)
>>> interpreter = load_interpreter("ticket.tflite")
>>> predict_litert(interpreter, x)
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from keras_lottery.errors import ConfigError
from keras_lottery.export._extras import require
from keras_lottery.export._files import staged_output
from keras_lottery.export._serving import check_tensorflow
from keras_lottery.export.plain import strip_masks
from keras_lottery.export.saved_model import write_saved_model

QUANTIZATIONS = ("dynamic", "float16")

#: Largest absolute difference from the Keras model's outputs (logits of the
#: model zoo's networks, inputs in [0, 1]) the tests accept, per quantization.
TOLERANCES = {None: 1e-5, "float16": 1e-2, "dynamic": 5e-2}


def export_litert(
    model,
    path,
    *,
    sparse: bool = False,
    quantize: str | None = None,
    overwrite: bool = False,
):
    """Strips the masks and writes a ``.tflite`` file to ``path`` (atomically;
    an existing ``path`` raises unless ``overwrite``). Returns the plain model."""
    check_tensorflow("LiteRT")
    _check_quantize(quantize)
    with staged_output(path, overwrite) as target:
        plain = strip_masks(model)
        data = litert_bytes(plain, sparse=sparse, quantize=quantize)
        with open(target, "wb") as handle:
            handle.write(data)
    return plain


def litert_bytes(plain, *, sparse: bool = False, quantize: str | None = None) -> bytes:
    """The flatbuffer of a plain (mask-free) model."""
    import tensorflow as tf

    _check_quantize(quantize)
    with tempfile.TemporaryDirectory(prefix="keras-lottery-litert-") as scratch:
        saved = os.path.join(scratch, "saved_model")
        write_saved_model(plain, saved)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        optimizations = []
        if quantize is not None:
            optimizations.append(tf.lite.Optimize.DEFAULT)
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if sparse:
            optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
        converter.optimizations = optimizations
        return converter.convert()


def _check_quantize(quantize) -> None:
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(
            f"quantize must be one of {', '.join(QUANTIZATIONS)} or None; "
            f"got {quantize!r}."
        )


def interpreter_class():
    """``ai_edge_litert``'s ``Interpreter`` where installed, else ``tf.lite``'s;
    :class:`~keras_lottery.errors.MissingExtraError` if neither exists."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf

            return tf.lite.Interpreter
        except (ImportError, AttributeError):
            return require("ai_edge_litert.interpreter", extra="litert").Interpreter
    return Interpreter


def load_interpreter(path_or_bytes, *, num_threads: int | None = None):
    """A LiteRT interpreter of a ``.tflite`` file (a path) or flatbuffer (bytes).

    The default XNNPACK delegate cannot prepare sparse *and* dynamic-range
    quantized fully-connected kernels; such models fall back to the built-in
    kernels without delegates.
    """
    cls = interpreter_class()
    source = (
        {"model_content": bytes(path_or_bytes)}
        if isinstance(path_or_bytes, (bytes, bytearray))
        else {"model_path": os.fspath(path_or_bytes)}
    )
    interpreter = cls(**source, num_threads=num_threads)
    try:
        interpreter.allocate_tensors()
    except RuntimeError:
        resolver = _no_delegates(cls)
        interpreter = cls(
            **source, num_threads=num_threads, experimental_op_resolver_type=resolver
        )
        interpreter.allocate_tensors()
    return interpreter


def _no_delegates(cls):
    module = __import__(cls.__module__, fromlist=["OpResolverType"])
    return module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def predict_litert(interpreter, x) -> np.ndarray:
    """Runs the interpreter on the batch ``x`` (resizing its input if needed)."""
    x = np.asarray(x)
    (detail,) = interpreter.get_input_details()
    if tuple(detail["shape"]) != x.shape:
        interpreter.resize_tensor_input(detail["index"], x.shape)
        interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], x.astype(detail["dtype"], copy=False))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
