"""The gearview error tree.

Every error a user can cause or meet carries a message and a hint (what to
do about it). Subclasses also inherit the matching built-in so callers that
only know Python's exceptions still catch them.
"""

from __future__ import annotations


class GearviewError(Exception):
    """Root of all errors gearview reports to a user."""

    hint: str = ""
    #: The CLI's exit code for this error (SPEC §3): 1 error, 5 peer unreachable/refused.
    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def one_line(self) -> str:
        """The message and hint on one line, as the CLI and status bar show it."""
        text = " ".join(self.message.split())
        return f"{text} ({self.hint})" if self.hint else text


class Cancelled(GearviewError):
    """The user cancelled a job; shown silently, never as a failure."""

    exit_code = 130


class ConfigError(GearviewError, ValueError):
    """A configuration value is invalid; the message names the key."""

    def __init__(self, key: str, reason: str, hint: str | None = None) -> None:
        super().__init__(f"{key}: {reason}", hint)
        self.key = key
        self.reason = reason


class InvalidValueError(GearviewError, ValueError):
    """A value given by the user (CLI argument, form field) is not acceptable."""


class NotFoundError(GearviewError, LookupError):
    """A study, series, instance or node that does not exist."""


class StoreError(GearviewError, OSError):
    """The local cache could not complete an operation; nothing was changed."""


class StorageFullError(StoreError):
    """The storage folder has no space (or quota) left."""

    hint = "free space in the storage folder or point it at a larger disk"


class StoragePermissionError(StoreError):
    """The storage folder cannot be written by this user."""

    hint = "check the permissions of the storage folder"


class InvalidDicomError(GearviewError, ValueError):
    """Bytes that are not a usable DICOM instance (garbage, truncated, too large)."""


class IndexCorruptError(StoreError):
    """The SQLite index cannot be opened or is damaged; the files are untouched."""

    hint = "run `gearview store rebuild` to recreate the index from the files"


class NetworkError(GearviewError, ConnectionError):
    """A DICOM peer refused, aborted or could not be reached."""

    exit_code = 5


class ListenError(NetworkError):
    """This station's server cannot listen (port in use, no permission): no peer involved."""

    exit_code = 1


def describe_error(exc: BaseException) -> str:
    """One line for a status bar, a dialog, a job record or a server log.

    Our errors give their message and hint; anything else is named by its
    type, so an unexpected failure still says what it was.
    """
    if isinstance(exc, GearviewError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}"


class PartlyDoneError(GearviewError):
    """Some of the work was done and some not; the job can be retried for the rest."""

    exit_code = 6
