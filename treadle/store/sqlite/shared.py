"""Process-wide registry: the state the SqliteStores of this process share on one database.

Every SqliteStore of this process on one database file (or one named in-memory database)
shares a :class:`Shared`: the write lock its writers queue on, the counters its waiters'
change tokens are made of, and the wake channel to the other processes on that file.
"""

from __future__ import annotations

import threading

from treadle.store.sqlite.wake import WakeChannel

__all__ = ["Shared", "shared_for"]


class Shared:
    """Per-database state shared by every SqliteStore of this process on that database.

    Args:
        database: the database file's absolute path, or None for an in-memory database
            (no other process can reach it: no wake channel).
    """

    def __init__(self, database: str | None) -> None:
        self.write_lock = threading.Lock()
        self.changed = threading.Condition()
        self.generation = 0  # every wake-up
        self.orchestrations = 0  # those of instances to claim
        self.activities = 0  # those of activity tasks to claim
        self.wake = WakeChannel(database, self.notify_local) if database else None

    def notify_local(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake this process's waiters: workers of the kinds of work given, clients always."""
        with self.changed:
            self.generation += 1
            self.orchestrations += orchestrations
            self.activities += activities
            self.changed.notify_all()

    def notify(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake the waiters of this process and of the others on the same file."""
        self.notify_local(orchestrations, activities)
        if self.wake is not None:
            self.wake.broadcast(orchestrations, activities)


_SHARED: dict[str, Shared] = {}
_SHARED_LOCK = threading.Lock()


def shared_for(key: str, is_file: bool) -> Shared:
    """The state shared on the database ``key`` (a file's absolute path, or an in-memory
    database's URI), made on first use."""
    with _SHARED_LOCK:
        shared = _SHARED.get(key)
        if shared is None:
            shared = _SHARED[key] = Shared(key if is_file else None)
        return shared
