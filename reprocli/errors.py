"""The ReproError tree: every failure a user can act on, each class with its exit code.

Importable from every layer. The CLI boundary (cli/app.py) is the only place these become
exit codes and one-line messages.
"""

from __future__ import annotations


class ReproError(Exception):
    """Something the user can fix: one line on stderr, never a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class NotAProjectError(ReproError):
    """Raised when no .repro/ directory (or Git repository) encloses the working directory."""


class InvalidFileError(ReproError):
    """Raised when a pointer, manifest, config or other repro file is malformed."""


class UnsafePathError(ReproError):
    """Raised when a path would leave the repository, enter .git/ or .repro/, or is malformed."""


class UsageError(ReproError):
    """Raised when arguments are valid syntax but make no sense (missing path, wrong target)."""


class MissingObjectError(ReproError):
    """Raised when an object a pointer or manifest names is not in the cache."""


class CorruptObjectError(ReproError):
    """Raised when an object's bytes do not hash to its name."""


class UncommittedChangesError(ReproError):
    """Raised when an operation would overwrite workspace data that is not safely cached."""


class LockedError(ReproError):
    """Raised when another repro process holds the repository lock past the wait limit."""


class GitError(ReproError):
    """Raised when a Git command fails or Git is missing."""


class StorageError(ReproError):
    """Raised when the filesystem refuses a write or read (disk full, permissions, I/O)."""


class RemoteError(ReproError):
    """Raised when a remote is unknown, unreachable or refuses a transfer."""


class StageFailedError(ReproError):
    """Raised when a pipeline stage's command exits non-zero."""

    exit_code = 1
