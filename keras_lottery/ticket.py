"""Tickets: masks + the weights to start training from + metadata, method-neutral.

IMP, Continuous Sparsification and any other search produce a :class:`Ticket`;
depth transfer, retraining recipes and export consume one.

File format (``.ticket.npz``, a zip written with ``numpy.savez``; files written
compressed by earlier versions load the same way):

- ``metadata``: UTF-8 JSON (as a uint8 array) with ``format_version``, the masked
  layers (``name``, ``class``, ``shape``) in model order, the variables
  (``path``, ``shape``, ``dtype``) in ``model.weights`` order without masks, and
  user metadata (``method``, ``rewind``, ``round``, ``sparsity``, ``metrics``,
  ``model_config``, ``topology`` of a registry model...).
- ``mask_{i}``: the i-th masked layer's mask, bit-packed (``numpy.packbits`` of
  the row-major flattened mask).
- ``weight_{j}``: the j-th variable's value at the rewind point.

Files are written to a temporary name and renamed into place.

Example:

>>> ticket = Ticket.from_model(model, weights=rewind_state, method="imp")
>>> ticket.save("round_5.ticket.npz")
>>> fresh = keras_lottery.models.get("lenet_300_100")
>>> Ticket.load("round_5.ticket.npz").apply(fresh)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import keras
import numpy as np

from keras_lottery import pruning
from keras_lottery._io import atomic_write_bytes, reading
from keras_lottery.models import registry

FORMAT_VERSION = 1


@dataclass
class Ticket:
    """A sparse subnetwork: which weights survive and where training starts.

    Attributes:
        masks: ``{layer name: bool mask}`` in model order.
        weights: values of every non-mask variable (``model.weights`` order) at
            the point training should start from (the rewind point).
        layers: ``[{"name", "class", "shape"}]`` of the masked layers.
        variables: ``[{"path", "shape", "dtype"}]`` matching ``weights``.
        metadata: free-form JSON-able details (method, rewind, round, metrics...).
    """

    masks: dict[str, np.ndarray]
    weights: list[np.ndarray]
    layers: list[dict]
    variables: list[dict]
    metadata: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ build

    @classmethod
    def from_model(cls, model, weights: list[np.ndarray] | None = None, **metadata):
        """A ticket with ``model``'s masks and ``weights`` (a full state as from
        ``rewind.capture_state``, masks included or not; default: the model's
        current values). The model's config is recorded when it serializes."""
        masked = pruning.masked_layers(model)
        mask_ids = {id(layer.mask) for layer in masked}
        variables = [v for v in model.weights if id(v) not in mask_ids]
        if weights is None:
            values = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
        else:
            values = _drop_masks(model, weights, mask_ids)
        metadata = dict(metadata)
        metadata.setdefault("sparsity", pruning.sparsity_report(model).sparsity)
        metadata.setdefault("topology", registry.topology(model))
        if "model_config" not in metadata:
            try:
                metadata["model_config"] = json.loads(model.to_json())
            except Exception:  # subclassed models may not serialize
                metadata["model_config"] = None
        return cls(
            masks={layer.name: layer.get_mask() for layer in masked},
            weights=values,
            layers=[
                {
                    "name": layer.name,
                    "class": type(layer).__name__,
                    "shape": list(layer.get_mask().shape),
                }
                for layer in masked
            ],
            variables=[
                {"path": v.path, "shape": list(v.shape), "dtype": str(v.dtype)}
                for v in variables
            ],
            metadata=metadata,
        )

    @property
    def sparsity(self) -> float:
        total = sum(m.size for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / total

    # ------------------------------------------------------------------ apply

    def apply(self, model) -> None:
        """Writes the ticket's weights and masks into ``model`` (same architecture).

        Layers and variables are matched by position, so a freshly built model
        with different automatic names works. Raises ``ValueError`` naming the
        first mismatching layer or variable; the model is unchanged on error.
        """
        masked = pruning.masked_layers(model)
        self._check_layers(masked)
        mask_ids = {id(layer.mask) for layer in masked}
        variables = [v for v in model.weights if id(v) not in mask_ids]
        self._check_variables(variables)
        for variable, value in zip(variables, self.weights, strict=True):
            variable.assign(value)
        pruning.set_masks(
            model,
            {
                layer.name: self.masks[info["name"]]
                for layer, info in zip(masked, self.layers, strict=True)
            },
        )

    def build_model(self):
        """Rebuilds the recorded model from its config and applies the ticket."""
        config = self.metadata.get("model_config")
        if not config:
            raise ValueError(
                "This ticket has no model config; build the model "
                "yourself and call ticket.apply(model)."
            )
        import keras_lottery

        keras_lottery.register_serializables()  # a fresh process may lack them
        model = keras.models.model_from_json(json.dumps(config))
        self.apply(model)
        return model

    def _check_layers(self, masked) -> None:
        if len(masked) != len(self.layers):
            raise ValueError(
                f"The ticket has {len(self.layers)} masked layers but the model has "
                f"{len(masked)} ({[layer.name for layer in masked]})."
            )
        for i, (layer, info) in enumerate(zip(masked, self.layers, strict=True)):
            shape = list(layer.get_mask().shape)
            if type(layer).__name__ != info["class"] or shape != list(info["shape"]):
                raise ValueError(
                    f"Masked layer {i} does not match: ticket has '{info['name']}' "
                    f"({info['class']}, shape {tuple(info['shape'])}), model has "
                    f"'{layer.name}' ({type(layer).__name__}, shape {tuple(shape)})."
                )

    def _check_variables(self, variables) -> None:
        if len(variables) != len(self.variables):
            raise ValueError(
                f"The ticket holds {len(self.variables)} variables but the model has "
                f"{len(variables)}."
            )
        for j, (variable, info) in enumerate(
            zip(variables, self.variables, strict=True)
        ):
            if list(variable.shape) != list(info["shape"]):
                raise ValueError(
                    f"Variable {j} does not match: ticket has '{info['path']}' with "
                    f"shape {tuple(info['shape'])}, model has '{variable.path}' with "
                    f"shape {tuple(variable.shape)}."
                )

    # ------------------------------------------------------------------ files

    def save(self, path) -> None:
        """Writes the ticket atomically (see the module docstring for the format)."""
        header = {
            "format_version": FORMAT_VERSION,
            "layers": self.layers,
            "variables": self.variables,
            "metadata": self.metadata,
        }
        arrays = {
            "metadata": np.frombuffer(
                json.dumps(header, default=_json_default).encode("utf-8"),
                dtype=np.uint8,
            )
        }
        for i, info in enumerate(self.layers):
            arrays[f"mask_{i}"] = np.packbits(self.masks[info["name"]].ravel())
        for j, value in enumerate(self.weights):
            arrays[f"weight_{j}"] = value
        buffer = io.BytesIO()
        # Uncompressed: zlib saves little on float weights and dominated IMP's
        # per-round bookkeeping (benchmarks/imp_bookkeeping.py, docs/benchmarks.md).
        np.savez(buffer, **arrays)
        atomic_write_bytes(path, buffer.getvalue())

    @classmethod
    def load(cls, path) -> Ticket:
        """Reads a ticket written by :meth:`save`; a damaged file, or another
        kind of .npz (a run's ``trained.npz``), raises
        :class:`~keras_lottery.errors.CorruptFileError` naming it."""
        expected = "a ticket .npz written by Ticket.save (e.g. round_NNN/ticket.npz)"
        with reading(path, expected), np.load(path, allow_pickle=False) as data:
            if "metadata" not in data.files:
                raise KeyError(
                    f"no 'metadata' entry; it holds {sorted(data.files)[:4]}... "
                    "(a state or trained.npz is not a ticket)"
                )
            header = json.loads(bytes(data["metadata"]).decode("utf-8"))
            if header.get("format_version") != FORMAT_VERSION:
                raise ValueError(
                    f"{path}: unsupported ticket format version "
                    f"{header.get('format_version')!r} (this library reads "
                    f"{FORMAT_VERSION})."
                )
            masks = {}
            for i, info in enumerate(header["layers"]):
                size = int(np.prod(info["shape"]))
                bits = np.unpackbits(data[f"mask_{i}"])
                if bits.size < size or bits.size - size >= 8:
                    raise ValueError(f"mask_{i} does not fit shape {info['shape']}")
                masks[info["name"]] = bits[:size].astype(bool).reshape(info["shape"])
            weights = [
                np.array(data[f"weight_{j}"]) for j in range(len(header["variables"]))
            ]
            for j, (value, info) in enumerate(
                zip(weights, header["variables"], strict=True)
            ):
                if list(value.shape) != list(info["shape"]):
                    raise ValueError(
                        f"weight_{j} has shape {value.shape}, the header says "
                        f"{info['shape']}"
                    )
        return cls(
            masks=masks,
            weights=weights,
            layers=header["layers"],
            variables=header["variables"],
            metadata=header["metadata"],
        )


def _drop_masks(model, state, mask_ids) -> list[np.ndarray]:
    weights = model.weights
    if len(state) == len(weights):
        return [
            np.array(v)
            for v, w in zip(state, weights, strict=True)
            if id(w) not in mask_ids
        ]
    if len(state) == len(weights) - len(mask_ids):
        return [np.array(v) for v in state]
    raise ValueError(
        f"weights holds {len(state)} arrays; the model has {len(weights)} variables "
        f"({len(mask_ids)} of them masks)."
    )


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Cannot store {type(value).__name__} in ticket metadata.")
