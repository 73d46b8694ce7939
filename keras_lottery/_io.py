"""Atomic file writes: write to a temporary file beside the target, then rename.

A process killed mid-write leaves the target as it was and a ``.tmp-*`` file
beside it, which :func:`remove_leftover_temps` deletes on the next start. Files
get the permissions the umask gives a new file (0644 under umask 022), not
``mkstemp``'s 0600.

The environment variable ``KERAS_LOTTERY_DRILL_KILL=N`` (or ``N:after``) kills
the process with SIGKILL at its N-th atomic write, before (or after) the rename:
the kill drills of ``tests/drills`` use it to stop a run at chosen points.
"""

from __future__ import annotations

import glob
import io
import json
import os
import signal
import tempfile

import numpy as np

TEMP_PREFIX = ".tmp-"
DRILL_ENV = "KERAS_LOTTERY_DRILL_KILL"
_writes = 0


def atomic_write_bytes(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that ``path`` is either old or complete.

    >>> atomic_write_bytes("run/ticket.npz", payload)
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _drill_point("before")
        os.replace(tmp, path)
        _drill_point("after")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    # os.umask can only be read by setting it; the value is restored at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _drill_point(when: str) -> None:
    """SIGKILLs this process at the write ``KERAS_LOTTERY_DRILL_KILL`` names."""
    spec = os.environ.get(DRILL_ENV)
    if not spec:
        return
    number, _, moment = spec.partition(":")
    global _writes
    if when == "before":
        _writes += 1
    if _writes == int(number) and when == (moment or "before"):
        os.kill(os.getpid(), signal.SIGKILL)


def remove_leftover_temps(directory) -> list[str]:
    """Deletes the ``.tmp-*`` files an interrupted write left anywhere under
    ``directory``; returns their paths.

    >>> remove_leftover_temps("runs/imp_3f2a9c1d0b7e")
    []
    """
    pattern = os.path.join(os.fspath(directory), "**", TEMP_PREFIX + "*")
    removed = []
    for path in glob.glob(pattern, recursive=True):
        if os.path.isfile(path):
            os.unlink(path)
            removed.append(path)
    return removed


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
