"""policywatch's exceptions, in one tree.

    PolicywatchError
    ├── ConfigError          the config file is missing, not YAML, or not valid
    ├── FetchError           a page or feed could not be fetched
    │   ├── TransientFetchError   worth retrying: timeouts, connection errors, 5xx, 429
    │   └── PermanentFetchError   not worth retrying now: 404, 410, too big, not HTML
    ├── ParseError           a fetched page could not be read
    ├── LoadError            the database cannot be opened or written
    │   └── DatabaseBusy          another process holds the database
    └── NotifyError          a channel refused or could not be reached

Errors of the libraries underneath (httpx, duckdb, yaml) are translated to these at the
module that calls them, with `raise ... from exc`.
"""

from __future__ import annotations


class PolicywatchError(Exception):
    """Base of every error policywatch raises on purpose."""


class ConfigError(PolicywatchError):
    """The config is unusable; the message names the key and line."""


class FetchError(PolicywatchError):
    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientFetchError(FetchError):
    """A fault that may pass: retried with backoff."""


class PermanentFetchError(FetchError):
    """A fault that will not pass by retrying now."""


class ParseError(PolicywatchError):
    """A page was fetched but nothing usable could be read from it."""


class LoadError(PolicywatchError):
    """The database could not be opened or written."""


class DatabaseBusy(LoadError):
    """Another process holds the database file."""


class NotifyError(PolicywatchError):
    """A notification could not be delivered."""
