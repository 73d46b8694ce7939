"""What a ticket costs to store: dense weights vs. bitmask + nonzeros.

Each figure counts one thing:

- ``dense_bytes``: every non-mask variable stored densely (what a plain model
  ships: zeros included, masks excluded);
- ``sparse_bytes``: the raw sparse payload: packed bitmasks + surviving kernel
  values of the masked layers + every other variable dense (no container, no
  metadata, no compression);
- ``sparse_file_bytes``: the sparse-npz file :func:`~.sparse_npz.save_sparse`
  writes: that payload deflate-compressed in a zip, plus the JSON metadata
  (model config). It is a real file size, so on a tiny model the container and
  metadata can make it larger than the raw payload.

Example:

>>> print(size_report(model))
dense 1,066,440 B | bitmask+nonzeros 141,512 B (0.133x) | sparse-npz file ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_lottery import pruning
from keras_lottery.export.sparse_npz import (
    METADATA_KEY,
    sparse_arrays,
    sparse_npz_bytes,
)


@dataclass(frozen=True)
class SizeReport:
    """Bytes to store a model's weights densely, as a raw bitmask + nonzeros
    payload, and as a sparse-npz file (see the module docstring)."""

    dense_bytes: int
    sparse_bytes: int
    sparse_file_bytes: int

    @property
    def sparse_ratio(self) -> float:
        return self.sparse_bytes / self.dense_bytes

    @property
    def sparse_file_ratio(self) -> float:
        return self.sparse_file_bytes / self.dense_bytes

    def to_dict(self) -> dict:
        return {
            "dense_bytes": self.dense_bytes,
            "sparse_bytes": self.sparse_bytes,
            "sparse_file_bytes": self.sparse_file_bytes,
            "sparse_ratio": self.sparse_ratio,
            "sparse_file_ratio": self.sparse_file_ratio,
        }

    def __str__(self) -> str:
        return (
            f"dense {self.dense_bytes:,} B | bitmask+nonzeros {self.sparse_bytes:,} B "
            f"({self.sparse_ratio:.3f}x) | sparse-npz file "
            f"{self.sparse_file_bytes:,} B ({self.sparse_file_ratio:.3f}x)"
        )


def size_report(model) -> SizeReport:
    """The :class:`SizeReport` of ``model``'s current weights and masks."""
    mask_ids = {id(layer.mask) for layer in pruning.masked_layers(model)}
    dense = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize
        for v in model.weights
        if id(v) not in mask_ids
    )
    arrays = sparse_arrays(model)
    sparse = sum(a.nbytes for key, a in arrays.items() if key != METADATA_KEY)
    return SizeReport(dense, sparse, len(sparse_npz_bytes(model)))
