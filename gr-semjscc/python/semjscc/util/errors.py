"""User-facing errors: one line that names the problem and the fix, never a traceback."""

from __future__ import annotations


class SemJSCCError(Exception):
    """An error the user can act on. ``exit_code`` 2 marks bad usage (paths, values)."""

    exit_code = 1


class UsageError(SemJSCCError):
    """Bad input from the user: a missing path, an out-of-range value, a wrong type."""

    exit_code = 2


class DataError(UsageError):
    """A dataset is missing or malformed."""


class ModelError(UsageError):
    """A model file is missing, corrupt, or does not match what it is used with."""


class OutputError(DataError, OSError):
    """A result could not be written (a full disk, a read-only or vanished folder). One line at the command
    line like every DataError, and still an OSError (``errno``, ``strerror``) for code that carries on
    without the file (a cache, a rescue checkpoint)."""

    def __init__(self, message: str, errno: int | None = None, strerror: str | None = None) -> None:
        super().__init__(message)
        self.errno, self.strerror = errno, strerror

    def __str__(self) -> str:
        return str(self.args[0])
