"""Atomic file writes: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np


def atomic_write_bytes(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` is either old or complete."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_copy(src, dst) -> None:
    """Copies ``src`` to ``dst`` atomically (``dst`` is old or complete)."""
    with open(src, "rb") as handle:
        atomic_write_bytes(dst, handle.read())


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path, obj) -> None:
    atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    )


def save_arrays(path, arrays) -> None:
    """Writes a list of arrays atomically as ``arr_0``, ``arr_1``, ... of a .npz."""
    buffer = io.BytesIO()
    np.savez(buffer, *arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load_arrays(path) -> list[np.ndarray]:
    """The list of arrays :func:`save_arrays` wrote."""
    with np.load(path, allow_pickle=False) as data:
        return [np.array(data[f"arr_{i}"]) for i in range(len(data.files))]
