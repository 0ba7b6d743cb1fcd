"""Process-wide registry: the change listeners of this process, by database schema.

A commit of this process that changes an instance's status wakes this process's clients on
the same schema at once, and a commit that ends an instance hands its row to the ones waiting
for it, without waiting for the notification's round trip through the server (see
:meth:`~.listener.ChangeListener.echo_status`). That needs the other stores of this process on
the same schema: the listeners registered here, keyed by (libpq connection string, schema
name). Stores on another schema or another database have another key: they never hear of
each other's commits this way (nor through the server: a notification names its schema).

Lifetime: a :class:`~.listener.ChangeListener` is registered when it is made (its
PostgresStore opens) and unregistered when it closes (its store closes); an entry (the
listeners of one schema) dies with its last listener. A store that is never closed keeps its
listener here for the life of the process. Nothing else registers or unregisters them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from treadle.store.base import InstanceRecord

__all__ = ["Key", "LocalListener", "listeners_of", "register", "unregister"]

Key = tuple[str, bytes]
"""(libpq connection string, schema name as the NOTIFY payload)."""


class LocalListener(Protocol):
    """What a commit of this process tells the listeners of its schema
    (:class:`~.listener.ChangeListener`)."""

    def wake_clients(self) -> None:
        """Wake the clients waiting on this listener: a status changed."""
        ...

    def receive_record(self, record: InstanceRecord) -> None:
        """Keep ``record`` (as a commit wrote it) if its instance is watched, and wake the
        clients."""
        ...

    def begin_commit(self, instance_id: str) -> Callable[[], None] | None:
        """Mark a commit that may end ``instance_id`` as under way, if it is watched;
        return the function that marks it done (and wakes the clients)."""
        ...


_LOCK = threading.Lock()
_BY_KEY: dict[Key, tuple[LocalListener, ...]] = {}


def register(key: Key, listener: LocalListener) -> None:
    """Register ``listener`` (its store opened) under its schema's ``key``."""
    with _LOCK:
        _BY_KEY[key] = (*_BY_KEY.get(key, ()), listener)


def unregister(key: Key, listener: LocalListener) -> None:
    """Forget ``listener`` (its store closed); the last one of a key takes the entry along."""
    with _LOCK:
        left = tuple(x for x in _BY_KEY.get(key, ()) if x is not listener)
        if left:
            _BY_KEY[key] = left
        else:
            _BY_KEY.pop(key, None)


def listeners_of(key: Key) -> tuple[LocalListener, ...]:
    """The listeners of this process on the schema ``key``."""
    return _BY_KEY.get(key, ())
