"""Store-wide chores a runtime takes its share of: applying the retention policy, firing
the schedules that are due, and failing activity attempts past their start-to-close deadline
(see :mod:`treadle.store.deadlines`; every runtime does it, about once a second: a deadline's
expiry is one transaction that only one runtime's can commit).

Threads: :class:`Chores` owns the ``treadle-chores`` thread; :meth:`Chores.run_once` is what
it does on each pass, also called by tests directly.

Retention is applied by one runtime of a store at a time, the holder of a small lease
(:data:`~treadle.store.retention.RETENTION_LEASE`), renewed at every pass; a pass deletes a
bounded number of short batches, so a long backlog is worked off over several passes while
workers go on committing. Schedules need no lease: every runtime may fire a due slot, and the
store's unique key on (schedule, slot) lets exactly one of them start it (see
:mod:`treadle.store.schedules`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

from treadle.clock import Clock, utcnow
from treadle.errors import StoreError
from treadle.store.base import Store
from treadle.store.deadlines import ActivityDeadlines
from treadle.store.retention import (
    RETENTION_LEASE,
    Maintenance,
    RetentionPolicy,
    purge_by_filter,
)
from treadle.store.schedules import ScheduleStore, fire_due

__all__ = ["RETENTION_BATCHES", "SCHEDULE_POLL_S", "Chores"]

logger = logging.getLogger(__name__)

RETENTION_BATCHES = 20
"""Batches one retention pass deletes at most (per status); the rest waits for the next."""

SCHEDULE_POLL_S = 1.0
"""How often a runtime looks for due schedule slots."""


class Chores:
    """Applies the retention policy (when given) and fires due schedules, on a thread.

    Args:
        store: the runtime's store.
        owner: the runtime's lease owner.
        clock: the runtime's clock.
        retention: the retention policy, or None for the store's (``store.retention``), if
            any.
        schedules: fire due schedules.
    """

    def __init__(
        self,
        store: Store,
        owner: str,
        clock: Clock,
        retention: RetentionPolicy | None,
        *,
        schedules: bool = True,
    ) -> None:
        self._owner = owner
        self._clock = clock
        # (the protocol checks once: isinstance with a runtime-checkable protocol is slow)
        self._maintenance = store if isinstance(store, Maintenance) else None
        self._retention = (
            (retention or self._maintenance.retention) if self._maintenance is not None else None
        )
        self._schedule_store = store if schedules and isinstance(store, ScheduleStore) else None
        self._schedules = self._schedule_store is not None
        self._deadlines = store if isinstance(store, ActivityDeadlines) else None
        self._next_retention = 0.0
        self._poll_s = min(
            SCHEDULE_POLL_S,
            self._retention.interval.total_seconds() if self._retention else SCHEDULE_POLL_S,
        )
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_on_advance: Callable[[], None] | None = None

    @property
    def needed(self) -> bool:
        """Whether there is anything for the thread to do."""
        return self._retention is not None or self._schedules or self._deadlines is not None

    def start(self, wrap: Callable[[Callable[[], None]], Callable[[], None]] | None = None) -> None:
        """Start the thread (if there is anything to do); ``wrap``, if given, wraps what it
        runs (see :class:`~treadle.runtime.threads.ThreadStarts`)."""
        if not self.needed:
            return
        self._stopping.clear()
        self._stop_on_advance = self._clock.on_advance(self._wake.set)
        target = self._loop if wrap is None else wrap(self._loop)
        self._thread = threading.Thread(target=target, name="treadle-chores", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._stop_on_advance is not None:
            self._stop_on_advance()
            self._stop_on_advance = None

    def run_once(self) -> None:
        """One pass: fail the activity attempts past their deadline, fire the due schedules,
        and apply retention if its time has come."""
        if self._deadlines is not None:
            expired = self._deadlines.expire_activity_deadlines()
            if expired:
                logger.info("%d activity attempt(s) ran past their timeout", expired)
        if self._schedule_store is not None:
            fire_due(self._schedule_store, utcnow(self._clock))
        policy, store = self._retention, self._maintenance
        if policy is None or store is None:
            return
        now = self._clock.monotonic()
        if now < self._next_retention:
            return
        interval = policy.interval.total_seconds()
        self._next_retention = now + interval
        if not store.try_lease(RETENTION_LEASE, self._owner, interval * 2 + 5):
            return
        for which in policy.filters(utcnow(self._clock)):
            outcome = purge_by_filter(store, which, recursive=False, max_batches=RETENTION_BATCHES)
            if outcome.deleted:
                logger.info("retention purged %d instance(s)", outcome.deleted)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
            except StoreError:
                logger.warning(
                    "could not expire activity deadlines, fire schedules or apply retention",
                    exc_info=True,
                )
            except Exception:
                logger.exception("schedule or retention chore failed")
            with contextlib.suppress(Exception):
                self._wake.wait(self._poll_s)
                self._wake.clear()
