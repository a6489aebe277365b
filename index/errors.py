"""The project's exceptions: each one a kind of failure whose message is meant for the user."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file or environment value that cannot be used."""


class IngestError(ValueError):
    """An input that cannot be added as an article (the message says why, for the user)."""


class LibraryBusy(RuntimeError):
    """Another process is changing the library."""


class LibraryUnavailable(RuntimeError):
    """The library's database cannot be reached or used."""


class BackupError(RuntimeError):
    """A backup that cannot be written, or one that cannot be restored (the live library is untouched)."""
