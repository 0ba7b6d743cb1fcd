"""Process-wide registry: the state the SqliteStores of this process share on one database.

Every SqliteStore of this process on one database file (or one named in-memory database)
shares a :class:`Shared`: the write lock its writers queue on, the counters its waiters'
change tokens are made of, and the wake channel to the other processes on that file. Stores
on different databases share nothing: their entries have different keys.

Lifetime: a store takes the entry of its database with :func:`acquire` when it opens (the
first store on a database makes it) and gives it back with :func:`release` when it closes;
the entry dies when the last store of this process on that database closes, and its wake
channel closes with it (its socket is removed). A store that is never closed keeps its entry
for the life of the process. Nothing else adds or removes entries.
"""

from __future__ import annotations

import threading

from treadle.store.sqlite.wake import WakeChannel

__all__ = ["Shared", "acquire", "release", "shared_databases"]


class Shared:
    """Per-database state shared by every SqliteStore of this process on that database.

    Args:
        key: the database: a file's absolute path, or an in-memory database's URI.
        is_file: the database is a file (other processes may use it: a wake channel).
    """

    def __init__(self, key: str, is_file: bool) -> None:
        self.key = key
        self.write_lock = threading.Lock()
        waiters = threading.Lock()
        self.changed = threading.Condition(waiters)
        """Notified on every wake-up: clients wait on it (``generation``)."""
        self.work_changed = threading.Condition(waiters)
        """Notified on wake-ups that give work only: workers wait on it (``work_generation``),
        so a commit that only changes a status (most steps of a busy runtime) wakes no
        worker thread for nothing."""
        self.generation = 0  # every wake-up
        self.work_generation = 0  # those that give work of either kind
        self.orchestrations = 0  # those of instances to claim
        self.activities = 0  # those of activity tasks to claim
        self.wake = WakeChannel(key, self.notify_local) if is_file else None
        self.users = 0  # the open stores that acquired it (under _LOCK)

    def notify_local(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake this process's waiters: workers of the kinds of work given, clients always."""
        with self.changed:
            self.generation += 1
            self.changed.notify_all()
            if orchestrations or activities:
                self.orchestrations += orchestrations
                self.activities += activities
                self.work_generation += 1
                self.work_changed.notify_all()

    def notify(self, orchestrations: bool = True, activities: bool = True) -> None:
        """Wake the waiters of this process and of the others on the same file."""
        self.notify_local(orchestrations, activities)
        if self.wake is not None:
            self.wake.broadcast(orchestrations, activities)


_LOCK = threading.Lock()
_BY_KEY: dict[str, Shared] = {}


def acquire(key: str, is_file: bool) -> Shared:
    """The state shared on the database ``key`` (a file's absolute path, or an in-memory
    database's URI), made if no open store of this process uses it; give it back with
    :func:`release` when the store closes."""
    with _LOCK:
        shared = _BY_KEY.get(key)
        if shared is None:
            shared = _BY_KEY[key] = Shared(key, is_file)
        shared.users += 1
        return shared


def release(shared: Shared) -> None:
    """Give back what :func:`acquire` gave (a store closed); the last user's release
    removes the entry and closes its wake channel."""
    with _LOCK:
        shared.users -= 1
        if shared.users > 0:
            return
        if _BY_KEY.get(shared.key) is shared:
            del _BY_KEY[shared.key]
    if shared.wake is not None:
        shared.wake.close()
    shared.notify_local()  # waiters of the closed stores look again, and find them closed


def shared_databases() -> list[str]:
    """The databases that open stores of this process share state on (for tests)."""
    with _LOCK:
        return sorted(_BY_KEY)
