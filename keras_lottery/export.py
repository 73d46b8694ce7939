"""Shipping a ticket: strip masks, export a SavedModel, measure the storage cost.

Example:

>>> plain = strip_masks(model)                  # standard Dense/Conv layers
>>> export_saved_model(model, "ticket_savedmodel")
>>> print(size_report(model))                   # dense vs. bitmask+nonzeros bytes
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
from keras import ops

from keras_lottery.conversion import check_graph_model, clone_with_weights, copy_of
from keras_lottery.layers.masked import PLAIN_TWINS, is_masked


def strip_masks(model):
    """A plain Keras copy of ``model`` with every mask baked into its kernel.

    Masked layers become the Keras layers they subclass (``MaskedDense`` ->
    ``Dense``...), with kernel ``kernel * mask``; outputs equal the masked
    model's. The result needs nothing from keras_lottery to load or serve.
    """
    check_graph_model(model, "strip_masks")

    def clone(layer):
        cls = PLAIN_TWINS.get(type(layer), type(layer))
        return cls.from_config(layer.get_config())

    return clone_with_weights(model, clone, _bake)


def _bake(source, target) -> None:
    if not is_masked(source):
        for src, dst in zip(source.weights, target.weights, strict=True):
            dst.assign(copy_of(src))
        return
    target_vars = list(target.weights)
    kernel = ops.convert_to_numpy(source.raw_kernel)
    target_vars[0].assign(np.where(source.get_mask(), kernel, 0).astype(kernel.dtype))
    if getattr(source, "bias", None) is not None:
        target_vars[1].assign(copy_of(source.bias))


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


# --------------------------------------------------------------------------- encoding


def sparse_arrays(model) -> dict[str, np.ndarray]:
    """The model's weights in a compact encoding, as named numpy arrays.

    Masked kernels are stored as a packed bitmask plus their surviving values in
    row-major order; every other variable is stored as is. Masks themselves are
    not stored separately (they are the bitmask).
    """
    arrays = {}
    for layer in _all_layers(model):
        if is_masked(layer):
            mask = layer.get_mask()
            kernel = np.asarray(ops.convert_to_numpy(layer.raw_kernel))
            key = f"{layer.name}/kernel"
            arrays[f"{key}:bits"] = np.packbits(mask.ravel())
            arrays[f"{key}:values"] = kernel.ravel()[mask.ravel()]
            arrays[f"{key}:shape"] = np.asarray(mask.shape, dtype=np.int64)
            others = [
                v
                for v in layer.weights
                if v is not layer.raw_kernel and v is not layer.mask
            ]
        else:
            others = list(layer.weights) if not _has_sublayers(layer) else []
        for variable in others:
            arrays[variable.path] = np.asarray(ops.convert_to_numpy(variable))
    return arrays


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if _has_sublayers(layer):
            yield from _all_layers(layer)


def _has_sublayers(layer) -> bool:
    return hasattr(layer, "layers") and bool(getattr(layer, "layers", None))


@dataclass(frozen=True)
class SizeReport:
    """Bytes to store a model's weights densely vs. in the sparse encoding."""

    dense_bytes: int
    sparse_bytes: int
    compressed_bytes: int

    @property
    def sparse_ratio(self) -> float:
        return self.sparse_bytes / self.dense_bytes

    @property
    def compressed_ratio(self) -> float:
        return self.compressed_bytes / self.dense_bytes

    def to_dict(self) -> dict:
        return {
            "dense_bytes": self.dense_bytes,
            "sparse_bytes": self.sparse_bytes,
            "compressed_bytes": self.compressed_bytes,
            "sparse_ratio": self.sparse_ratio,
            "compressed_ratio": self.compressed_ratio,
        }

    def __str__(self) -> str:
        return (
            f"dense {self.dense_bytes:,} B | bitmask+nonzeros {self.sparse_bytes:,} B "
            f"({self.sparse_ratio:.3f}x) | compressed {self.compressed_bytes:,} B "
            f"({self.compressed_ratio:.3f}x)"
        )


def size_report(model) -> SizeReport:
    """What the model's weights cost to store: dense (masks excluded, as a plain
    model ships) vs. bitmask + nonzero values, raw and zlib-compressed (``.npz``)."""
    dense = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.weights
        if not _is_mask_variable(model, v)
    )
    arrays = sparse_arrays(model)
    sparse = sum(a.nbytes for k, a in arrays.items() if not k.endswith(":shape"))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return SizeReport(dense, sparse, buffer.getbuffer().nbytes)


def _is_mask_variable(model, variable) -> bool:
    return any(
        is_masked(layer) and variable is layer.mask for layer in _all_layers(model)
    )
