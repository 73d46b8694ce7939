"""One entry point for every export format: :func:`export`.

Formats (:data:`FORMATS`): ``saved_model`` (a folder), ``keras`` (a ``.keras``
file), ``litert`` (a ``.tflite`` file; options ``sparse`` and ``quantize``),
``onnx`` (needs the ``onnx`` extra), ``sparse-npz`` (bitmask + nonzeros,
:func:`~.sparse_npz.load_sparse` reads it back). Every format writes to a
temporary path beside the output and renames it at the end; an existing output
raises :class:`~keras_lottery.errors.OutputExistsError` unless ``overwrite``.

Example:

>>> result = export(ticket, "ticket.tflite", format="litert", sparse=True)
>>> print(result)               # file bytes vs. the dense weights
>>> result.to_dict()            # the same as JSON-able data
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from keras_lottery import pruning
from keras_lottery.errors import ConfigError
from keras_lottery.export._files import check_output, output_bytes
from keras_lottery.export.sizes import SizeReport, size_report
from keras_lottery.ticket import Ticket

FORMATS = ("saved_model", "keras", "litert", "onnx", "sparse-npz")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the output, its bytes, the weights' sizes."""

    format: str
    path: str
    file_bytes: int
    sizes: SizeReport
    sparsity: float
    options: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    @property
    def file_ratio(self) -> float:
        """Output bytes / dense weight bytes."""
        return self.file_bytes / self.sizes.dense_bytes

    def to_dict(self) -> dict:
        return {
            "format": self.format,
            "path": self.path,
            "options": self.options,
            "file_bytes": self.file_bytes,
            "file_ratio": self.file_ratio,
            "sparsity": self.sparsity,
            "source": self.source,
            **self.sizes.to_dict(),
        }

    def __str__(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.options.items() if v)
        label = f"{self.format} ({options})" if options else self.format
        return (
            f"exported {label} to {self.path}\n"
            f"  file      {self.file_bytes:,} B ({self.file_ratio:.3f}x the dense "
            "weights)\n"
            f"  weights   {self.sizes}\n"
            f"  sparsity  {self.sparsity:.2%} of the masked layers' weights pruned"
        )


def export(
    ticket_or_model,
    path,
    format: str = "saved_model",
    *,
    overwrite: bool = False,
    sparse: bool = False,
    quantize: str | None = None,
    source: dict | None = None,
    metadata: dict | None = None,
) -> ExportResult:
    """Exports a masked model or a :class:`~keras_lottery.ticket.Ticket` (its
    recorded model rebuilt with the ticket's weights) to ``path`` in ``format``.

    ``sparse`` and ``quantize`` (``"dynamic"`` or ``"float16"``) apply to
    ``litert`` only. ``source`` is recorded in the result (where the weights
    came from); ``metadata`` (default: a ticket's own) is stored in sparse-npz
    files. Returns an :class:`ExportResult`.
    """
    _check_options(format, sparse, quantize)
    path = check_output(path, overwrite)
    if isinstance(ticket_or_model, Ticket):
        model = ticket_or_model.build_model()
        if metadata is None:
            metadata = ticket_or_model.metadata
    else:
        model = ticket_or_model
    metadata = dict(metadata or {})
    _write(model, path, format, overwrite, sparse, quantize, metadata)
    options = {"sparse": sparse, "quantize": quantize} if format == "litert" else {}
    return ExportResult(
        format=format,
        path=os.path.abspath(path),
        file_bytes=output_bytes(path),
        sizes=size_report(model),
        sparsity=_sparsity(model),
        options=options,
        source=dict(source or {}),
    )


def _check_options(format, sparse, quantize) -> None:
    if format not in FORMATS:
        raise ConfigError(
            f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}."
        )
    if format != "litert" and (sparse or quantize):
        raise ConfigError(
            f"sparse and quantize apply to the litert format only, not {format}."
        )


def _write(model, path, format, overwrite, sparse, quantize, metadata) -> None:
    if format == "saved_model":
        from keras_lottery.export.saved_model import export_saved_model

        export_saved_model(model, path, overwrite=overwrite)
    elif format == "keras":
        from keras_lottery.export.keras_format import export_keras

        export_keras(model, path, overwrite=overwrite)
    elif format == "litert":
        from keras_lottery.export.litert import export_litert

        export_litert(
            model, path, sparse=sparse, quantize=quantize, overwrite=overwrite
        )
    elif format == "onnx":
        from keras_lottery.export.onnx import export_onnx

        export_onnx(model, path, overwrite=overwrite)
    else:
        from keras_lottery.export.sparse_npz import save_sparse

        save_sparse(model, path, overwrite=overwrite, **metadata)


def _sparsity(model) -> float:
    return (
        pruning.sparsity_report(model).sparsity if pruning.masked_layers(model) else 0.0
    )
