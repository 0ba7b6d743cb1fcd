"""Stores: where workflow state lives. ``open_store`` picks a backend from a URL.

URLs: ``sqlite:///relative.db``, ``sqlite:////absolute/path.db``, ``memory://`` (SQLite in
memory, this process only), ``postgresql://user@host:5432/db`` (needs ``treadle[postgres]``).
With no URL, ``$TREADLE_STORE`` is used, else ``sqlite:///treadle.db``.

Any URL may say ``?retention=COMPLETED:7d,FAILED:30d`` (see
:meth:`~treadle.store.retention.RetentionPolicy.parse`): the store's retention policy, which
every runtime on it given none of its own applies.
"""

from __future__ import annotations

import os
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from treadle.errors import InvalidInputError
from treadle.store.base import (
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    InboxMessage,
    InstancePage,
    InstanceQuery,
    InstanceRecord,
    NewActivity,
    NewInstance,
    NewMessage,
    OrchestrationWorkItem,
    Store,
    TurnCommit,
)
from treadle.store.capabilities import Backend, InstanceWatcher, WorkNotifier

__all__ = [
    "DEFAULT_STORE_URL",
    "ActivityResult",
    "ActivityWorkItem",
    "Backend",
    "CommitOutcome",
    "InboxMessage",
    "InstancePage",
    "InstanceQuery",
    "InstanceRecord",
    "InstanceWatcher",
    "NewActivity",
    "NewInstance",
    "NewMessage",
    "OrchestrationWorkItem",
    "Store",
    "TurnCommit",
    "WorkNotifier",
    "migrate",
    "open_store",
    "redact_url",
    "resolve_store_url",
    "schema_status",
]

DEFAULT_STORE_URL = "sqlite:///treadle.db"


def resolve_store_url(url: str | None = None) -> str:
    """The store URL to use: ``url``, else ``$TREADLE_STORE``, else the SQLite default."""
    return url or os.environ.get("TREADLE_STORE") or DEFAULT_STORE_URL


def redact_url(url: str) -> str:
    """The URL with its password, if any, replaced by ``***`` (for printing and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def open_store(store: str | Store | None = None) -> Store:
    """Open the store named by a URL (or return ``store`` if it already is one).

    Raises:
        InvalidInputError: the URL's scheme is not supported, or an option of it is not valid
            (such as ``?retention=``).
    """
    if store is not None and not isinstance(store, str):
        return store
    url, retention = _split_retention(resolve_store_url(store))
    policy = None
    if retention is not None:
        from treadle.store.retention import RetentionPolicy

        try:
            policy = RetentionPolicy.parse(retention)
        except InvalidInputError as exc:
            raise InvalidInputError(f"store URL {redact_url(url)!r}: {exc}") from None
    opened: Store = _backend(url).STORE_CLASS(url)
    if policy is not None:
        from treadle.store.retention import Maintenance

        if isinstance(opened, Maintenance):
            opened.retention = policy
    return opened


def _split_retention(url: str) -> tuple[str, str | None]:
    """``url`` without its ``retention`` option, and that option's text (None if absent).

    The other options are kept as written (re-encoding them could change what a backend
    reads, such as a PostgreSQL ``options=`` value)."""
    base, sep, query = url.partition("?")
    if not sep or "retention" not in query:
        return url, None
    options = query.split("&")
    given = [o for o in options if o.partition("=")[0] == "retention"]
    if not given:
        return url, None
    kept = "&".join(o for o in options if o.partition("=")[0] != "retention")
    return (f"{base}?{kept}" if kept else base), unquote_plus(given[-1].partition("=")[2])


def _backend(url: str) -> Backend:
    """The backend module for ``url`` (see :class:`~treadle.store.capabilities.Backend`)."""
    # (mypy checks each module returned here against the Backend protocol)
    scheme = url.split(":", 1)[0].lower()
    if scheme in ("sqlite", "memory"):
        from treadle.store import sqlite

        return sqlite
    if scheme in ("postgres", "postgresql"):
        try:
            from treadle.store import postgres
        except ImportError as exc:
            raise InvalidInputError(
                f"store URL {url!r} needs the PostgreSQL driver: pip install 'treadle[postgres]'"
            ) from exc
        return postgres
    raise InvalidInputError(
        f"unsupported store URL {url!r}: use sqlite:///path.db, memory:// or postgresql://..."
    )


def schema_status(url: str | None = None) -> tuple[int, int]:
    """(schema version in the store, newest version this code knows); changes nothing."""
    resolved = resolve_store_url(url)
    return _backend(resolved).schema_status(resolved)


def migrate(url: str | None = None) -> int:
    """Create or upgrade the store's schema; return the version now in it."""
    resolved = resolve_store_url(url)
    return _backend(resolved).migrate(resolved)
