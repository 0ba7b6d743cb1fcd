"""ChangeListener: LISTEN/NOTIFY wake-ups for :class:`~treadle.store.postgres.PostgresStore`.

Every write of the store that someone may act on sends ``NOTIFY treadle_work, '<schema>'``
with its commit, with a suffix that says what changed: ``:orch`` (instances to claim),
``:act`` (activity tasks nobody holds), both when there is none, or ``:status`` (a status
alone, for clients waiting on an instance; workers have nothing new to claim). A listener
holds one dedicated connection (not from the pool) that LISTENs on that channel and counts
the notifications for its schema: all of them, and those of each kind of work apart. These
counts are the store's change tokens, so a waiting worker or client wakes within a fraction
of a millisecond of another process's commit and idles without polling.

A commit of this process that changes an instance's status also wakes this process's clients
on the same schema as soon as it returns (:meth:`ChangeListener.echo_status`; the listeners of
this process are found in :mod:`.local_listeners`): a client
waiting on a workflow that a runtime of its own process runs need not wait for the
notification's round trip through the server. A commit that ends an instance also hands its
row, as the commit wrote it, to the listeners of this process that watch that instance
(:meth:`ChangeListener.watch`, :meth:`ChangeListener.echo_record`): the waiting client then
has the final state without reading it again.

A lost notification is never fatal:
- when the connection drops (network, server restart) the listener reconnects with backoff,
  and bumps the token on every failed attempt and after reconnecting (waiters then re-read
  the store, which is all a missed notification could have told them);
- with no notification for ``refresh_s`` seconds the token is bumped anyway.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import pq

from treadle.store.base import InstanceRecord, WorkToken
from treadle.store.postgres.local_listeners import listeners_of, register, unregister

__all__ = ["CHANNEL", "ChangeListener"]

logger = logging.getLogger(__name__)

CHANNEL = "treadle_work"
ORCHESTRATIONS_SUFFIX = ":orch"
ACTIVITIES_SUFFIX = ":act"
STATUS_SUFFIX = ":status"
SUFFIXES = {  # (instances to claim, activities to claim) -> the payload's suffix
    (True, True): "",
    (True, False): ORCHESTRATIONS_SUFFIX,
    (False, True): ACTIVITIES_SUFFIX,
    (False, False): STATUS_SUFFIX,
}
_FIRST_CONNECT_WAIT_S = 10.0
_BACKOFF_START_S = 0.05
_BACKOFF_MAX_S = 1.0


class ChangeListener:
    """A change counter fed by PostgreSQL notifications on a dedicated connection.

    Args:
        conninfo: libpq connection string (without treadle's own URL options).
        connect_kwargs: extra connection parameters (timeouts, keepalives).
        payload: the notification payload to count (the store's schema name).
        display: the server, for log messages (no password).
        refresh_s: bump the counter after this long without notifications.
    """

    def __init__(
        self,
        conninfo: str,
        connect_kwargs: dict[str, Any],
        payload: str,
        display: str,
        *,
        refresh_s: float = 30.0,
    ) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._payload = payload.encode()
        self._kinds = {(payload + suffix).encode(): kinds for kinds, suffix in SUFFIXES.items()}
        self._display = display
        self._refresh_s = refresh_s
        self._changed = threading.Condition()
        self._generation = 0  # every notification
        self._orchestrations = 0  # those of instances to claim
        self._activities = 0  # those of activity tasks to claim
        self._listening = False
        self._first_attempt = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._key = (conninfo, self._payload)
        self._callbacks: list[Callable[[bool, bool], None]] = []
        # instance id -> [watchers, the latest record a commit of this process handed over,
        # commits of this process under way that may end it]
        self._watched: dict[str, list[Any]] = {}
        register(self._key, self)  # unregistered by close

    @property
    def is_listening(self) -> bool:
        """Whether the LISTEN connection is up right now."""
        return self._listening

    def token(self, work_only: bool = False) -> int | WorkToken:
        """The current change counter (starts the listener on first use).

        The first call waits until LISTEN is in effect (or the first connection attempt
        failed), so no commit after the returned token can go unnoticed.

        Args:
            work_only: the counters of new work instead, one per kind (a :class:`WorkToken`).
        """
        self._start()
        with self._changed:
            return self._current(work_only)

    def _current(self, work_only: bool) -> int | WorkToken:
        if work_only:
            return WorkToken(self._orchestrations, self._activities)
        return self._generation

    def wait(
        self, timeout_s: float, since: object = None, work_only: bool = False
    ) -> int | WorkToken:
        """Block until the counter differs from ``since`` or ``timeout_s`` passed.

        Args:
            work_only: wait for the counters of new work only (see :meth:`token`).

        Returns:
            the current counter.
        """
        self._start()
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._changed:
            if since is None:
                since = self._current(work_only)
            while self._current(work_only) == since and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._current(work_only)

    def on_work(self, callback: Callable[[bool, bool], None]) -> Callable[[], None]:
        """Call ``callback(orchestrations, activities)`` on the listener thread whenever new
        work may be there (as the counters of :meth:`token` move), until the returned
        function is called. It saves a waiter thread's hop; it must be quick."""
        self._start()
        with self._changed:
            self._callbacks = [*self._callbacks, callback]

        def cancel() -> None:
            with self._changed:
                self._callbacks = [c for c in self._callbacks if c is not callback]

        return cancel

    def echo_status(self) -> None:
        """Wake the clients of this process on this schema now: a commit of ours changed an
        instance's status (its notification, still on its way, wakes them again)."""
        for listener in listeners_of(self._key):
            listener.wake_clients()

    def wake_clients(self) -> None:
        """Wake the clients waiting on this listener (not the workers): a status changed."""
        self._bump(orchestrations=False, activities=False)

    def watch(self, instance_id: str) -> None:
        """Keep the records that this process's commits hand over for ``instance_id`` (see
        :meth:`echo_record`) until as many :meth:`unwatch` calls."""
        with self._changed:
            entry = self._watched.setdefault(instance_id, [0, None, 0])
            entry[0] += 1

    def unwatch(self, instance_id: str) -> None:
        """Undo one :meth:`watch` call."""
        with self._changed:
            entry = self._watched.get(instance_id)
            if entry is not None:
                entry[0] -= 1
                if entry[0] <= 0:
                    del self._watched[instance_id]

    def watched(self, instance_id: str) -> tuple[InstanceRecord | None, bool]:
        """The latest record of a watched instance a commit of this process handed over
        (None: none since it was first watched), and whether a commit of this process that
        may hand one over is under way (see :meth:`committing`)."""
        with self._changed:
            entry = self._watched.get(instance_id)
            return (None, False) if entry is None else (entry[1], entry[2] > 0)

    @contextlib.contextmanager
    def committing(self, instance_id: str) -> Iterator[None]:
        """Mark a commit of this process that may end ``instance_id`` as under way, for the
        listeners of this process that watch it: its notification can arrive before the
        commit returns, and a waiter woken by it had better wait for the record than read
        it again. The waiters are woken when it is done, whatever the outcome."""
        marked = [
            done
            for listener in listeners_of(self._key)
            if (done := listener.begin_commit(instance_id)) is not None
        ]
        try:
            yield
        finally:
            for done in marked:
                done()

    def begin_commit(self, instance_id: str) -> Callable[[], None] | None:
        """Mark a commit that may end ``instance_id`` as under way if it is watched here (see
        :meth:`committing`); return the function that marks it done and wakes the clients."""
        with self._changed:
            entry = self._watched.get(instance_id)
            if entry is None:
                return None
            entry[2] += 1

        def done() -> None:
            with self._changed:
                entry[2] -= 1
            self.wake_clients()

        return done

    def echo_record(self, record: InstanceRecord) -> None:
        """Like :meth:`echo_status`, and hand ``record`` (the row as a commit of this
        process just wrote it) to the listeners of this process that watch its instance."""
        for listener in listeners_of(self._key):
            listener.receive_record(record)

    def receive_record(self, record: InstanceRecord) -> None:
        """Keep ``record`` if its instance is watched here and it is newer than the one
        kept, and wake the clients (see :meth:`echo_record`)."""
        with self._changed:
            entry = self._watched.get(record.instance_id)
            if entry is not None and (entry[1] is None or entry[1].version < record.version):
                entry[1] = record
        self.wake_clients()

    def close(self) -> None:
        """Stop the listener thread and close its connection."""
        unregister(self._key, self)
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        with self._changed:
            self._changed.notify_all()
        self._wake_r.close()
        self._wake_w.close()

    # ---- the listener thread ---------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None:
            with self._start_lock:
                if self._thread is None and not self._stopping.is_set():
                    self._thread = threading.Thread(
                        target=self._run, name="treadle-pg-listener", daemon=True
                    )
                    self._thread.start()
        self._first_attempt.wait(_FIRST_CONNECT_WAIT_S)

    def _bump(self, orchestrations: bool = True, activities: bool = True) -> None:
        with self._changed:
            self._generation += 1
            self._orchestrations += orchestrations
            self._activities += activities
            self._changed.notify_all()
            callbacks = self._callbacks
        if orchestrations or activities:
            for callback in callbacks:
                try:
                    callback(orchestrations, activities)
                except Exception:  # a waiter's bug must not stop the notifications
                    logger.exception("a work callback failed")

    def _run(self) -> None:
        backoff = _BACKOFF_START_S
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **self._kwargs) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening = True
                    # Commits made while nobody listened are caught by the re-read this causes.
                    self._bump()
                    self._first_attempt.set()
                    if failures:
                        logger.info("listening to PostgreSQL at %s again", self._display)
                    backoff, failures = _BACKOFF_START_S, 0
                    self._pump(conn)
            except psycopg.Error as exc:
                if self._stopping.is_set():
                    break
                failures += 1
                text = " ".join(str(exc).split()) or type(exc).__name__
                logger.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "lost the LISTEN connection to PostgreSQL at %s (%s); reconnecting, "
                    "meanwhile waiters re-check the store every %.0f s at most",
                    self._display,
                    text,
                    _BACKOFF_MAX_S,
                )
            finally:
                self._listening = False
            self._first_attempt.set()
            self._bump()  # waiters re-read the store while we are deaf
            if self._stopping.wait(backoff):
                break
            backoff = min(backoff * 2, _BACKOFF_MAX_S)

    def _pump(self, conn: psycopg.Connection[Any]) -> None:
        """Count notifications until stopped; raise psycopg.Error when the connection drops."""
        pgconn = conn.pgconn
        channel = CHANNEL.encode()
        with selectors.DefaultSelector() as selector:
            selector.register(conn.fileno(), selectors.EVENT_READ, "pg")
            selector.register(self._wake_r, selectors.EVENT_READ, "wake")
            while not self._stopping.is_set():
                events = selector.select(timeout=self._refresh_s)
                if not events:
                    self._bump()  # a safety net: nothing heard for a while, look again
                    continue
                if any(key.data == "wake" for key, _ in events):
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(64)
                    continue
                pgconn.consume_input()  # raises OperationalError when the connection is gone
                seen = orchestrations = activities = False
                while (note := pgconn.notifies()) is not None:
                    kinds = self._kinds.get(note.extra) if note.relname == channel else None
                    if kinds is not None:
                        seen = True
                        orchestrations = orchestrations or kinds[0]
                        activities = activities or kinds[1]
                if seen:
                    self._bump(orchestrations, activities)
                if pgconn.status != pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the server closed the connection")
