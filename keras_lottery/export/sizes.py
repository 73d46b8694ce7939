"""What a ticket costs to store: dense vs. bitmask + nonzero values.

Example:

>>> print(size_report(model))   # dense vs. bitmask+nonzeros bytes
>>> arrays = sparse_arrays(model)
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from keras import ops

from keras_lottery.layers.masked import is_masked


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
