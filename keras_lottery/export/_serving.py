"""The one serving function every TensorFlow-based format is traced from.

SavedModel, LiteRT and ONNX all see the same function: the plain model called
in inference mode on one input named :data:`INPUT_NAME` (batch size free).

Example:

>>> fn = serving_function(plain)      # tf.function, input "inputs"
>>> fn(np.zeros((2, 784), "float32")).shape
TensorShape([2, 10])
"""

from __future__ import annotations

import keras

#: Name of the input of every exported signature (SavedModel ``serve`` and
#: ``serving_default``, the LiteRT signature, the ONNX graph).
INPUT_NAME = "inputs"
#: Name of the output in the SavedModel and LiteRT signatures and the ONNX graph.
OUTPUT_NAME = "output_0"


def check_tensorflow(what: str) -> None:
    """Raises ``ValueError`` unless Keras runs on TensorFlow (``what`` needs it)."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            f"{what} export traces the model with TensorFlow; run it with "
            f"KERAS_BACKEND=tensorflow (current backend: {keras.backend.backend()})."
        )


def input_signature(model) -> list:
    """``[tf.TensorSpec]`` of the model's single input, named :data:`INPUT_NAME`."""
    import tensorflow as tf

    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise ValueError(
            f"Export supports models with exactly one input; {model.name} has "
            f"{len(inputs)}."
        )
    spec = inputs[0]
    return [tf.TensorSpec(spec.shape, spec.dtype, name=INPUT_NAME)]


def serving_function(model):
    """A ``tf.function`` calling ``model`` in inference mode on its named input."""
    import tensorflow as tf

    def serve(inputs):
        return model(inputs, training=False)

    return tf.function(serve, input_signature=input_signature(model), autograph=False)
