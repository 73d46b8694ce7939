"""One process at a time per run folder: an exclusive ``fcntl.flock`` on
``<run folder>/.lock``.

The operating system releases the lock when its process ends, however it ends
(a SIGKILL included), so a lock left by a killed process is never in the way:
the file stays, the lock does not. The holder's PID is written into the file so
that a second process can say who holds it. Where ``fcntl`` does not exist
(Windows) runs are not locked.

Example:

>>> with run_folder_lock("runs/imp_3f2a9c1d0b7e", wait=False):
...     ...  # train, write phases
"""

from __future__ import annotations

import contextlib
import os

from keras_lottery._messages import print_msg
from keras_lottery.errors import RunFolderError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK = ".lock"


def lock_path(run_dir: str) -> str:
    return os.path.join(run_dir, LOCK)


@contextlib.contextmanager
def run_folder_lock(run_dir: str, wait: bool = False):
    """Holds the run folder's lock for the ``with`` block. Another process
    holding it makes this raise :class:`RunFolderError` naming its PID, or,
    with ``wait``, blocks until it is released."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    os.makedirs(run_dir, exist_ok=True)
    handle = open(lock_path(run_dir), "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            if not wait:
                raise RunFolderError(
                    f"{run_dir} is in use by another keras-lottery process (PID "
                    f"{holder}). Wait for it to finish, or pass --wait (wait=True) "
                    "to start when it does."
                ) from None
            print_msg(f"[keras_lottery] waiting for PID {holder} to release {run_dir}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def _holder(handle) -> str:
    handle.seek(0)
    return handle.read().strip() or "unknown"
