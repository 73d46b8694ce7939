"""Export outputs appear whole or not at all: staged beside the target, renamed.

Example:

>>> with staged_output("ticket.tflite", overwrite=False) as target:
...     open(target, "wb").write(data)          # "ticket.tflite" appears here
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

from keras_lottery.errors import OutputExistsError


def check_output(path, overwrite: bool) -> str:
    """``path`` as a string; raises :class:`OutputExistsError` if it exists and
    ``overwrite`` is false."""
    path = os.fspath(path)
    if os.path.lexists(path) and not overwrite:
        raise OutputExistsError(
            f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it."
        )
    return path


@contextlib.contextmanager
def staged_output(path, overwrite: bool = False):
    """Yields a path in a temporary folder beside ``path`` (same base name, so
    suffixes such as ``.keras`` survive) and renames it into place when the
    block ends without error; an old ``path`` (``overwrite=True``) is moved
    aside first and deleted after. On error nothing is left behind."""
    path = check_output(path, overwrite)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        target = os.path.join(staging, os.path.basename(path) or "output")
        yield target
        if not os.path.lexists(target):
            raise RuntimeError(f"the exporter wrote nothing for {path}")
        if os.path.lexists(path):
            os.replace(path, os.path.join(staging, ".replaced"))
        os.replace(target, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def output_bytes(path) -> int:
    """Bytes of a file, or of every file under a folder."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return os.path.getsize(path)
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )
