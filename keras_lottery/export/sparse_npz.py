"""A ticket's weights as bitmask + nonzeros: the ``sparse-npz`` format.

A ``.npz`` (zip, deflate-compressed, written by ``numpy.savez_compressed``)
holding, for a model's non-mask variables in ``model.weights`` order:

- ``<variable path>:bits``: for the kernel of each masked layer, the mask
  packed 8 per byte (``numpy.packbits`` of the row-major flattened mask; the
  last byte padded with zeros);
- ``<variable path>:values``: that kernel's surviving values (``mask`` True),
  row-major, in the kernel's dtype;
- ``<variable path>``: every other variable (biases, batch-norm statistics,
  unmasked layers' kernels), dense;
- ``__metadata__``: UTF-8 JSON as a uint8 array: ``format``
  (``"keras_lottery.sparse_npz"``), ``format_version`` (1), ``layers`` (the
  masked layers' ``name``, ``class``, ``shape``, ``kernel`` path), ``variables``
  (``path``, ``shape``, ``dtype`` in order), ``metadata`` (the model config and
  what the ticket knew: method, round, sparsity...).

Pruned kernel entries are not stored; they decode as exact zeros. Any reader
with numpy rebuilds a kernel as
``k = zeros(n); k[unpackbits(bits)[:n].astype(bool)] = values; k.reshape(shape)``.

Example:

>>> save_sparse(model, "ticket.sparse.npz")
>>> ticket = load_sparse("ticket.sparse.npz")   # a Ticket, bit-for-bit
>>> ticket.build_model()                        # masked model, same outputs
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from keras_lottery import pruning
from keras_lottery._io import atomic_write_bytes
from keras_lottery.errors import CorruptFileError
from keras_lottery.export._files import check_output
from keras_lottery.ticket import Ticket

FORMAT = "keras_lottery.sparse_npz"
FORMAT_VERSION = 1
METADATA_KEY = "__metadata__"
_EXPECTED = "a sparse-npz file written by keras_lottery.export (save_sparse)"


def sparse_arrays(model, **metadata) -> dict[str, np.ndarray]:
    """Every array of the sparse-npz file of ``model`` (``__metadata__`` included),
    with the masks baked in: pruned positions are dropped whatever the stored
    kernel holds there."""
    ticket = Ticket.from_model(model)
    ticket.metadata.update(
        {k: v for k, v in metadata.items() if k != "model_config"}
    )  # the config recorded from the model itself wins
    masked = pruning.masked_layers(model)
    kernel_of = {layer.name: layer.raw_kernel.path for layer in masked}
    kernels = {layer.raw_kernel.path: layer.get_mask() for layer in masked}
    arrays = {}
    for info, value in zip(ticket.variables, ticket.weights, strict=True):
        mask = kernels.get(info["path"])
        if mask is None:
            arrays[info["path"]] = value
        else:
            arrays[f"{info['path']}:bits"] = np.packbits(mask.ravel())
            arrays[f"{info['path']}:values"] = value.ravel()[mask.ravel()]
    layers = [{**info, "kernel": kernel_of[info["name"]]} for info in ticket.layers]
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "layers": layers,
        "variables": ticket.variables,
        "metadata": ticket.metadata,
    }
    arrays[METADATA_KEY] = np.frombuffer(
        json.dumps(header, default=_json_default).encode("utf-8"), dtype=np.uint8
    )
    return arrays


def sparse_npz_bytes(model, **metadata) -> bytes:
    """The bytes of the sparse-npz file of ``model``."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **sparse_arrays(model, **metadata))
    return buffer.getvalue()


def save_sparse(model, path, *, overwrite: bool = False, **metadata) -> None:
    """Writes the sparse-npz file of ``model`` to ``path`` (atomically; an
    existing ``path`` raises unless ``overwrite``). ``metadata`` is stored too."""
    path = check_output(path, overwrite)
    atomic_write_bytes(path, sparse_npz_bytes(model, **metadata))


def load_sparse(path) -> Ticket:
    """The :class:`~keras_lottery.ticket.Ticket` stored in a sparse-npz file:
    masks from the bitmasks, weights with pruned entries exactly zero, bit for
    bit what was saved. ``ticket.build_model()`` rebuilds the masked model."""
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data[METADATA_KEY]).decode("utf-8"))
            _check_header(path, header)
            masks_by_kernel = {}
            weights = [
                _decode(data, info, masks_by_kernel) for info in header["variables"]
            ]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
        if isinstance(error, CorruptFileError):
            raise
        raise CorruptFileError(path, _EXPECTED, str(error)) from error
    layers = [
        {k: v for k, v in info.items() if k != "kernel"} for info in header["layers"]
    ]
    masks = {info["name"]: masks_by_kernel[info["kernel"]] for info in header["layers"]}
    return Ticket(
        masks=masks,
        weights=weights,
        layers=layers,
        variables=header["variables"],
        metadata=header["metadata"],
    )


def _check_header(path, header) -> None:
    if header.get("format") != FORMAT:
        raise CorruptFileError(path, _EXPECTED, f"format {header.get('format')!r}")
    if header.get("format_version") != FORMAT_VERSION:
        raise CorruptFileError(
            path,
            _EXPECTED,
            f"format version {header.get('format_version')!r}; this library reads "
            f"{FORMAT_VERSION}",
        )


def _decode(data, info, masks_by_kernel) -> np.ndarray:
    key, shape = info["path"], tuple(info["shape"])
    if key in data.files:
        return np.array(data[key])
    size = int(np.prod(shape))
    mask = np.unpackbits(data[f"{key}:bits"])[:size].astype(bool)
    values = data[f"{key}:values"]
    if values.size != int(mask.sum()):
        raise ValueError(
            f"{key}: {values.size} values for {int(mask.sum())} kept positions"
        )
    kernel = np.zeros(size, dtype=values.dtype)
    kernel[mask] = values
    masks_by_kernel[key] = mask.reshape(shape)
    return kernel.reshape(shape)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot store {type(value).__name__} in sparse-npz metadata.")
