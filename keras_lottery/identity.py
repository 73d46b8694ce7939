"""What a run folder was computed from: the data's content and the software.

A run folder is named by its config's hash; a ``data.path`` enters that hash as
the sha256 of the file's bytes (:func:`data_digest`), not as the path, so a file
fixed in place gets a new run folder and a file moved keeps its folder.
``identity.json`` (written when a run starts) records the data fingerprint, the
Keras backend and the versions of keras_lottery, Keras, TensorFlow/JAX and NumPy;
resuming under a different backend or with different data (e.g. the
``$KERAS_LOTTERY_DATA`` file of a built-in name changed) is refused
(:func:`check_identity`), as it would silently make a hybrid of two runs.
Version changes only warn.

Example:

>>> write_identity("runs/imp_3f2a9c1d0b7e", config)
>>> check_identity("runs/imp_3f2a9c1d0b7e", config)  # raises RunFolderError
"""

from __future__ import annotations

import hashlib
import json
import os
import platform

from keras_lottery.errors import RunFolderError

IDENTITY = "identity.json"
DATA_ENV = "KERAS_LOTTERY_DATA"  # the folder of <name>.npz files (data/datasets.py)
_digests: dict[tuple, str] = {}


def identity_path(run_dir: str) -> str:
    return os.path.join(run_dir, IDENTITY)


def file_sha256(path) -> str:
    """The sha256 of a file's bytes, cached by (path, size, mtime) in-process.

    >>> file_sha256("mnist.npz")[:12]
    '6a1a8c2b5e0f'
    """
    path = os.path.abspath(os.fspath(path))
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def data_file(data_config) -> str | None:
    """The .npz a data config reads (``path``, else ``$KERAS_LOTTERY_DATA/
    <name>.npz`` if present), or ``None`` for a built-in dataset."""
    if data_config.path:
        return data_config.path
    folder = os.environ.get(DATA_ENV)
    candidate = os.path.join(folder, f"{data_config.name}.npz") if folder else None
    return candidate if candidate and os.path.exists(candidate) else None


def data_digest(data_config) -> str | None:
    """The sha256 of the data file, or ``None`` (built-in dataset, or a
    ``path`` that does not exist: loading it fails later with its own error)."""
    path = data_file(data_config)
    if path is None or not os.path.isfile(path):
        return None
    return file_sha256(path)


def current(config) -> dict:
    """The identity of a run of ``config`` in this process."""
    import keras
    import numpy as np

    from keras_lottery import __version__

    versions = {
        "keras_lottery": __version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    backend = keras.backend.backend()
    if backend in ("tensorflow", "jax"):
        module = __import__(backend)
        versions[backend] = module.__version__
    return {
        "backend": backend,
        "data": {
            "name": config.data.name,
            "file": data_file(config.data),
            "sha256": data_digest(config.data),
        },
        "versions": versions,
    }


def write_identity(run_dir: str, config, manifests: bool = True) -> dict:
    """Writes ``identity.json``; ``manifests`` says whether every phase of the
    folder carries a manifest (False for folders started before manifests)."""
    from keras_lottery._io import atomic_write_json

    identity = dict(current(config), manifests=manifests)
    atomic_write_json(identity_path(run_dir), identity)
    return identity


def read_identity(run_dir: str) -> dict | None:
    """``identity.json`` of a run folder, or ``None`` if it has none."""
    path = identity_path(run_dir)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        from keras_lottery.errors import CorruptFileError

        raise CorruptFileError(
            path,
            "the identity.json keras_lottery writes when a run starts",
            f"{error}; delete it to treat the folder as one started before "
            "identity files",
        ) from error
    if not isinstance(data, dict):
        from keras_lottery.errors import CorruptFileError

        raise CorruptFileError(path, "a JSON object (identity.json)")
    return data


def check_identity(run_dir: str, config, backend: bool = True) -> list[str]:
    """Raises :class:`RunFolderError` if ``run_dir`` was started with other data
    or (if ``backend``) another backend than this process would use for
    ``config``; returns warnings about version differences (empty if none)."""
    saved = read_identity(run_dir)
    if saved is None:
        return []
    now = current(config)
    if backend and saved.get("backend") != now["backend"]:
        raise RunFolderError(
            f"{run_dir} was started with the {saved.get('backend')} backend; this "
            f"process uses {now['backend']}. Resuming would mix two backends' "
            f"numerics in one run: set KERAS_BACKEND={saved.get('backend')}, or "
            "use another --out folder to start afresh."
        )
    before = (saved.get("data") or {}).get("sha256")
    after = now["data"]["sha256"]
    if before != after:
        raise RunFolderError(
            f"{run_dir} was started with data {_describe(saved.get('data'))}; the "
            f"data now is {_describe(now['data'])}. Its finished phases were "
            "trained on other data: restore that data, or delete the run folder "
            "to start afresh."
        )
    old, new = saved.get("versions") or {}, now["versions"]
    return [
        f"{name} {old[name]} -> {new[name]}"
        for name in sorted(set(old) & set(new))
        if old[name] != new[name] and name != "python"
    ]


def _describe(data) -> str:
    data = data or {}
    if data.get("sha256") is None:
        return f"the built-in {data.get('name')!r} (no file)"
    return f"{data.get('file')} (sha256 {data['sha256'][:12]}...)"
