"""The library's own exceptions: one family, each naming what was wrong and where.

Every error a user can cause by their input (a config, a data file, a ticket or run
file, a model the library cannot handle) is a :class:`LotteryError`, so callers can
catch the family, and each subclasses the builtin that fits (``ValueError`` for bad
values, ``OSError`` for bad files) so existing ``except ValueError`` code still works.

Example:

>>> try:
...     raise CorruptFileError("r/ticket.npz", "a ticket .npz from Ticket.save")
... except LotteryError as error:
...     print(error)
r/ticket.npz is not a valid file: expected a ticket .npz from Ticket.save.
"""

from __future__ import annotations

import os


class LotteryError(Exception):
    """Base of every error keras_lottery raises about a user's input."""


class ConfigError(LotteryError, ValueError):
    """A config key is unknown or has a value of the wrong type or range."""


class DataError(LotteryError, ValueError):
    """A dataset is inconsistent (lengths, label range, non-finite values, shapes)."""


class DivergenceError(LotteryError, RuntimeError):
    """Training produced a non-finite loss or non-finite weights."""


class CorruptFileError(LotteryError, OSError):
    """A file the library wrote (or should have written) cannot be read as such."""

    def __init__(self, path, expected: str, detail: str = ""):
        self.path = os.fspath(path)
        self.expected = expected
        message = f"{self.path} is not a valid file: expected {expected}."
        if detail:
            message += f" ({detail})"
        super().__init__(message)

    def __reduce__(self):  # keeps the error picklable across processes
        return (type(self), (self.path, self.expected))


class RunFolderError(LotteryError, OSError):
    """A run folder is missing, incomplete, locked or inconsistent with the request."""


class MissingExtraError(LotteryError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


class OutputExistsError(LotteryError, FileExistsError):
    """An output path exists and the caller did not ask to overwrite it."""


class DistributedError(LotteryError, RuntimeError):
    """The workers of a multi-worker run disagree (different variables or phases)."""
