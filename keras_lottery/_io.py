"""Atomic file writes (write to a temporary file beside the target, then
rename) and the matching readers, which turn any unreadable file into a
:class:`~keras_lottery.errors.CorruptFileError` naming the path and what the
file should be.

A process killed mid-write leaves the target as it was and a ``.tmp-*`` file
beside it, which :func:`remove_leftover_temps` deletes on the next start. Files
get the permissions the umask gives a new file (0644 under umask 022), not
``mkstemp``'s 0600.

The environment variable ``KERAS_LOTTERY_DRILL_KILL=N`` (or ``N:after``) kills
the process with SIGKILL at its N-th atomic write, before (or after) the rename:
the kill drills of ``tests/drills`` use it to stop a run at chosen points.

Example:

>>> save_arrays("state.npz", [np.zeros(3)])
>>> load_arrays("state.npz", "a state .npz of a run folder")
[array([0., 0., 0.])]
>>> read_json("record.json", "a round record.json", required=("round",))
Traceback (most recent call last):
CorruptFileError: record.json is not a valid file: expected a round record.json...
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import signal
import tempfile
import zipfile
import zlib

import numpy as np

from keras_lottery.errors import CorruptFileError, LotteryError

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


#: What decoding a damaged file raises (numpy, zipfile, zlib, json, the codecs,
#: and lookups of missing entries); a missing or unreadable file is not damaged.
_DECODING_ERRORS = (
    EOFError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,  # also json.JSONDecodeError and UnicodeDecodeError
    AttributeError,
    NotImplementedError,  # zipfile: an unknown compression method
    zipfile.BadZipFile,
    zlib.error,
    OSError,
)


@contextlib.contextmanager
def reading(path, expected: str):
    """Turns a decoding failure inside the block into a
    :class:`CorruptFileError` naming ``path`` and ``expected`` (what the file
    should be). A missing file or a permission problem passes through as is.

    >>> with reading(path, "a ticket .npz from Ticket.save"):
    ...     header = json.loads(np.load(path)["metadata"].tobytes())
    """
    try:
        yield
    except (LotteryError, FileNotFoundError, PermissionError):
        raise
    except _DECODING_ERRORS as error:
        # str(KeyError) quotes its message; show the message as written.
        text = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise CorruptFileError(
            path, expected, f"{type(error).__name__}: {text}"[:300]
        ) from error


def load_arrays(
    path, expected: str = "a .npz of arrays written by keras_lottery"
) -> list[np.ndarray]:
    """The list of arrays :func:`save_arrays` wrote (``CorruptFileError``
    naming ``path`` and ``expected`` if it is damaged)."""
    with reading(path, expected), np.load(path, allow_pickle=False) as data:
        names = [f"arr_{i}" for i in range(len(data.files))]
        if sorted(data.files) != sorted(names):
            raise ValueError(f"holds {sorted(data.files)[:5]}, not arr_0, arr_1, ...")
        listed = _zip_entries(path)
        if listed != len(names):  # a damaged directory can hide entries
            raise ValueError(
                f"its zip directory lists {listed} arrays, {len(names)} read"
            )
        return [np.array(data[name]) for name in names]


def _zip_entries(path) -> int:
    """The entry count the zip's end-of-central-directory record states."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 65557))  # the record and a maximal comment
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 12 > len(tail):
        raise zipfile.BadZipFile("no end-of-central-directory record")
    return int.from_bytes(tail[at + 10 : at + 12], "little")


def read_json(path, expected: str, required=()) -> dict:
    """The JSON object in ``path``, which must hold the keys ``required``
    (``CorruptFileError`` naming ``path`` and ``expected`` otherwise)."""
    with reading(path, expected):
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"holds a JSON {type(data).__name__}, not an object")
        missing = [key for key in required if key not in data]
        if missing:
            raise KeyError(f"no {missing} entries")
    return data
