"""Typed storage errors.

Storage must not import ``backend`` (data flows studio -> backend -> storage), so it has its own small
hierarchy. Every failure a caller can provoke (an unknown run, an illegal status change, a corrupt file)
is one of these, with a message that names the thing and where it is, so the CLI and the studio can show
one clear line instead of a traceback.
"""
from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised on purpose by ``storage``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StorageError):
    """A run, version, alias, artifact or snapshot that does not exist."""


class IntegrityError(StorageError):
    """Stored bytes do not match their recorded sha256 (a corrupt or truncated artifact or bundle)."""


class InvalidTransition(StorageError):
    """A run status change the lifecycle does not allow (e.g. succeeded -> running)."""


class InvalidInput(StorageError):
    """A malformed argument: a metric event without a key, an unknown kind, a non-numeric value."""


class SchemaTooNew(StorageError):
    """The database's schema revision is unknown here: a newer Prompt Studio wrote it. Opening refuses
    (and changes nothing) rather than guess, since an older program cannot know what that schema means."""
