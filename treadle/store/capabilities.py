"""Optional store capabilities and the contract of a backend module, as typed Protocols.

Every store implements :class:`~treadle.store.base.Store`. Some can do more, and the runtime
and client use that when it is there, checking with ``isinstance`` (never ``getattr``):

- :class:`WorkNotifier`: the store calls back as soon as new work may be there (PostgreSQL's
  LISTEN/NOTIFY thread), so a runtime needs no thread of its own waiting on the store.
- :class:`InstanceWatcher`: a commit of this process that ends an instance hands its row
  to a waiting client of the same process, sparing it a read.
- :class:`InstanceCounter`: counts instances by workflow name and status in one query (the
  dashboard's summary).
- :class:`StartGrouping`: ``commit_turns`` takes a turn that creates its instance in a group
  with other turns, so a start from a client of the runtime's process carries the engine's
  other turns along in its one durable commit.
- :class:`ThreadConnections`: each thread has a connection of its own (SQLite), which a
  runtime's threads open as they start, before the runtime says it is started.

A backend module (``treadle.store.sqlite``, ``treadle.store.postgres``) satisfies
:class:`Backend`: :func:`treadle.store.open_store` and the ``treadle db`` commands find the
store class and the schema functions through it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Literal, Protocol, runtime_checkable

from treadle.core.history import OrchestrationStatus
from treadle.store.base import InstanceRecord, Store

__all__ = [
    "Backend",
    "HandedRecord",
    "InstanceCounter",
    "InstanceWatcher",
    "StartGrouping",
    "ThreadConnections",
    "WorkNotifier",
]

HandedRecord = Callable[[], tuple[InstanceRecord | None, bool]]
"""Gives the latest row a commit of this process wrote for a watched instance (None until
then), and whether such a commit is under way."""


@runtime_checkable
class WorkNotifier(Protocol):
    """A store that can call a worker back when new work may be there."""

    def on_work(self, callback: Callable[[bool, bool], None]) -> Callable[[], None]:
        """Call ``callback(orchestrations, activities)`` when new work may be there (on the
        store's own thread: it must be quick); return the function that stops it."""
        ...


@runtime_checkable
class InstanceWatcher(Protocol):
    """A store that hands a waiting client the row a commit of this process wrote."""

    def watching(self, instance_id: str) -> AbstractContextManager[HandedRecord]:
        """While open, a commit of this process that ends ``instance_id`` hands over its row:
        the function yielded gives it (see :data:`HandedRecord`)."""
        ...


@runtime_checkable
class InstanceCounter(Protocol):
    """A store that counts its instances by workflow name and status."""

    def count_instances(self) -> list[tuple[str, OrchestrationStatus, int]]:
        """(workflow name, status, how many), ordered by name then status."""
        ...


@runtime_checkable
class StartGrouping(Protocol):
    """A store whose ``commit_turns`` also takes turns that create their instance
    (:attr:`~treadle.store.base.TurnCommit.create`, each :func:`~treadle.store.base.creatable`)
    in a group with other turns, each committed or refused on its own as any turn of a group.

    SQLite has it: every commit of a process goes through one writer and pays a durable flush
    of its own, so one commit for a start and the engine's other turns saves one. PostgreSQL
    has not: its commits run side by side on the server, and a creating turn is committed
    alone there.
    """

    groups_starts: Literal[True]
    """Marks the capability (a Protocol checked with ``isinstance`` needs a member)."""


@runtime_checkable
class ThreadConnections(Protocol):
    """A store in which each thread has a connection of its own, opened on its first use.

    SQLite has it: a connection's first statement reads the database's schema, some 0.5 ms
    on a small machine, which a runtime's threads (dispatcher, watcher, chores) pay as they
    start rather than in the first workflow after the runtime said it was started.
    PostgreSQL has not: its threads share a pool of connections opened with the store.
    """

    def connect_thread(self) -> None:
        """Open the calling thread's connection now, if it has none.

        Raises:
            StoreError: as the connection's first use would.
        """
        ...


class Backend(Protocol):
    """What a backend module exports (checked by mypy where the modules are listed)."""

    @property
    def STORE_CLASS(self) -> Callable[[str], Store]:
        """The store class, called with the store URL."""
        ...

    def migrate(self, url: str) -> int:
        """Create or upgrade the schema at ``url``; return the version now in it."""
        ...

    def schema_status(self, url: str) -> tuple[int, int]:
        """(schema version in the store, newest version this code knows); changes nothing."""
        ...
