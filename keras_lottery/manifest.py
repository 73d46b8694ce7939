"""Manifests of finished phases: the size and sha256 of each file a phase wrote,
checked before anything reads the phase again.

Every finished phase folder (IMP ``round_NNN``, CS ``search_NNN`` and
``ticket``, branches, instability analyses) holds ``manifest.json``. It is
written after the phase's data files and *before* its ``record.json``, listing
``record.json``'s hash from the bytes about to be written: ``record.json`` stays
the last write (it marks the phase finished), so a finished phase always has a
manifest, and a kill between the two leaves an unfinished phase that is redone.

:func:`verify_phase` raises :class:`~keras_lottery.errors.CorruptFileError`
(a file's size or content differs: truncated, overwritten, copied from another
round) or :class:`~keras_lottery.errors.RunFolderError` (a listed file, or the
manifest of a finished phase, is missing), naming the file and what to do.

Example:

>>> write_manifest("runs/imp_x/round_002", ["ticket.npz", "trained.npz"])
>>> verify_phase("runs/imp_x/round_002")
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping

from keras_lottery._io import atomic_write_bytes, atomic_write_json
from keras_lottery.errors import CorruptFileError, RunFolderError

MANIFEST = "manifest.json"
RECORD = "record.json"


def manifest_path(directory) -> str:
    return os.path.join(os.fspath(directory), MANIFEST)


def _entry(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def file_entry(path) -> dict:
    """``{size, sha256}`` of a file's bytes.

    >>> file_entry("round_002/ticket.npz")["size"]
    10909
    """
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"size": size, "sha256": digest.hexdigest()}


def write_manifest(
    directory, files: Iterable[str], pending: Mapping[str, bytes] | None = None
) -> dict:
    """Writes ``directory/manifest.json`` for ``files`` (paths relative to
    ``directory``; ``../rewind_state.npz`` allowed) and for ``pending`` files
    not written yet (name -> the bytes that will be written). Returns it.

    >>> write_manifest("runs/imp_x/round_000", ["ticket.npz", "../rewind_state.npz"])
    """
    directory = os.fspath(directory)
    entries = {name: file_entry(os.path.join(directory, name)) for name in files}
    entries.update({name: _entry(data) for name, data in (pending or {}).items()})
    manifest = {"version": 1, "files": entries}
    atomic_write_json(manifest_path(directory), manifest)
    return manifest


def record_bytes(record: Mapping) -> bytes:
    """The bytes :func:`finish_phase` writes as ``record.json``."""
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    return text.encode("utf-8")


def finish_phase(directory, files: Iterable[str], record: Mapping) -> None:
    """Writes the manifest of ``files`` and ``record.json``, then ``record.json``
    itself: the last write of a phase.

    >>> finish_phase("runs/imp_x/round_002", ["ticket.npz", "trained.npz"], rec)
    """
    data = record_bytes(record)
    write_manifest(directory, files, {RECORD: data})
    atomic_write_bytes(os.path.join(os.fspath(directory), RECORD), data)


def has_manifest(directory) -> bool:
    return os.path.exists(manifest_path(directory))


def verify_phase(directory, remedy: str = "", required: bool = True) -> bool:
    """Checks every file the manifest of ``directory`` lists (size, then
    sha256). Returns False without checking if there is no manifest and
    ``required`` is False (a phase written before manifests existed); raises
    otherwise. ``remedy`` says what to do (default: delete the folder and
    re-run to redo it).

    >>> verify_phase("runs/imp_x/round_002", "delete round_002 and later rounds")
    True
    """
    directory = os.fspath(directory)
    remedy = remedy or f"delete {directory} and re-run to redo that phase"
    path = manifest_path(directory)
    if not os.path.exists(path):
        if not required:
            return False
        raise RunFolderError(
            f"{directory} is a finished phase without its {MANIFEST}: its files "
            f"cannot be verified. To recover: {remedy}."
        )
    try:
        with open(path, encoding="utf-8") as handle:
            files = json.load(handle)["files"]
        items = [(str(n), int(e["size"]), str(e["sha256"])) for n, e in files.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptFileError(
            path,
            "the manifest.json keras_lottery writes when a phase finishes",
            f"{type(error).__name__}: {error}. To recover: {remedy}",
        ) from error
    for name, size, sha256 in items:
        verify_file(os.path.join(directory, name), size, sha256, remedy)
    return True


def verify_file(path: str, size: int, sha256: str, remedy: str) -> None:
    """Raises unless ``path`` has ``size`` bytes with this ``sha256``."""
    if not os.path.exists(path):
        raise RunFolderError(
            f"{path} is missing: the manifest of its finished phase lists it. "
            f"To recover: {remedy}."
        )
    actual = file_entry(path)
    if actual["size"] != size:
        what = f"{actual['size']} bytes instead of {size}: truncated or replaced"
    elif actual["sha256"] != sha256:
        what = "same size, other content: overwritten or copied from elsewhere"
    else:
        return
    raise CorruptFileError(
        path,
        "the file its phase's manifest lists",
        f"{what}. To recover: {remedy}",
    )
