"""A ticket as an ONNX graph, converted by ``tf2onnx`` and run by onnxruntime.

``tf2onnx.convert.from_keras`` does not handle Keras 3 models (it fails with a
``KeyError`` on a ``keras_tensor_N`` name), so the model is traced as a
``tf.function`` with a named input signature and converted with
``tf2onnx.convert.from_function``, the path Keras's own ``export(format="onnx")``
takes (after Keras's numpy-2 patch of tf2onnx). Pruned weights stay exact zeros
in the graph's initializers (tested); ``tf2onnx`` may transpose kernels (NHWC to
NCHW) or fold batch normalization into them, which moves or scales values but
keeps zeros zero.

Needs the ``onnx`` extra: ``pip install 'keras-lottery[onnx]'`` (tf2onnx,
onnxruntime).

Example:

>>> export_onnx(model, "ticket.onnx")
>>> predict_onnx(onnx_session("ticket.onnx"), x)
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from keras_lottery.export._extras import require
from keras_lottery.export._files import staged_output
from keras_lottery.export._serving import (
    INPUT_NAME,
    OUTPUT_NAME,
    check_tensorflow,
    input_signature,
    serving_function,
)
from keras_lottery.export.plain import strip_masks

#: Largest absolute difference from the Keras outputs accepted by the tests.
TOLERANCE = 1e-5


def export_onnx(model, path, *, opset: int | None = None, overwrite: bool = False):
    """Strips the masks and writes an ``.onnx`` file to ``path`` (atomically; an
    existing ``path`` raises unless ``overwrite``). Returns the plain model."""
    check_tensorflow("ONNX")
    require("tf2onnx", extra="onnx")
    with staged_output(path, overwrite) as target:
        plain = strip_masks(model)
        proto = onnx_proto(plain, opset=opset)
        with open(target, "wb") as handle:
            handle.write(proto.SerializeToString())
    return plain


def onnx_proto(plain, *, opset: int | None = None):
    """The ``onnx.ModelProto`` of a plain (mask-free) model: input ``inputs``,
    output ``output_0``."""
    tf2onnx = require("tf2onnx", extra="onnx")
    _patch_tf2onnx()
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.WARNING)  # it logs every optimizer pass
    try:
        proto, _ = tf2onnx.convert.from_function(
            serving_function(plain), input_signature=input_signature(plain), opset=opset
        )
    finally:
        tf2onnx_logger.setLevel(level)
    _rename_output(proto, OUTPUT_NAME)
    return proto


def _patch_tf2onnx() -> None:
    # tf2onnx 1.17 still uses numpy APIs removed in numpy 2; Keras ships the fix.
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # pragma: no cover - Keras moved or dropped its patch
        return
    with warnings.catch_warnings():  # its probe of np.object warns on numpy 2
        warnings.simplefilter("ignore", FutureWarning)
        patch_tf2onnx()


def _rename_output(proto, name: str) -> None:
    (output,) = proto.graph.output
    old = output.name
    output.name = name
    for node in proto.graph.node:
        node.output[:] = [name if o == old else o for o in node.output]
        node.input[:] = [name if i == old else i for i in node.input]


def onnx_session(path, *, threads: int | None = None):
    """An onnxruntime CPU session of an ``.onnx`` file (``threads``: intra-op
    threads, default onnxruntime's)."""
    ort = require("onnxruntime", extra="onnx")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def predict_onnx(session, x) -> np.ndarray:
    """The session's output for the batch ``x``."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x, dtype="float32")})[0]
