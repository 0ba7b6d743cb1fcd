"""The retention, schedule and queue methods of PostgresStore, a mixin of the store class kept
apart from its core (see :mod:`treadle.store.retention`, :mod:`treadle.store.schedules` and
:mod:`treadle.store.queues`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from treadle.store.base import OrchestrationWorkItem
from treadle.store.deadlines import EXPIRE_LIMIT
from treadle.store.postgres import deadlines as deadline_rows
from treadle.store.postgres import maintenance as maintenance_rows
from treadle.store.postgres import queue_limits as queue_limit_rows
from treadle.store.postgres import queues as queue_rows
from treadle.store.postgres import schedules as schedule_rows
from treadle.store.postgres.claims import claim_orchestrations_in
from treadle.store.postgres.connection import Connections
from treadle.store.queues import Queue, QueueClaim, QueuedNames, QueueLimits
from treadle.store.retention import PurgeFilter, RetentionPolicy
from treadle.store.schedules import ScheduleRecord, ScheduleRun, SlotFiring

__all__ = ["ChoreMethods"]


class ChoreMethods:
    """Retention and schedules on the store's connections (``_db``)."""

    _db: Connections
    retention: RetentionPolicy | None = None
    """The retention policy set on the store: runtimes on it given none apply it (see
    :class:`~treadle.store.retention.Maintenance`)."""

    # ---- retention (see treadle.store.retention) ------------------------------------------
    def purge_finished(self, which: PurgeFilter, limit: int, *, dry_run: bool = False) -> list[str]:
        """Delete (or find) up to ``limit`` finished instances matching ``which``."""
        return maintenance_rows.purge_finished(self._db, which, limit, dry_run)

    def reclaim_space(self) -> None:
        """Nothing to do: PostgreSQL's autovacuum reuses the space of deleted rows."""

    def try_lease(self, name: str, owner: str, lease_s: float) -> bool:
        """Take or renew the store-wide lease ``name``; return whether ``owner`` holds it."""
        return maintenance_rows.try_lease(self._db, name, owner, lease_s)

    # ---- activity deadlines (see treadle.store.deadlines) ----------------------------------
    def expire_activity_deadlines(self, limit: int = EXPIRE_LIMIT) -> int:
        """Fail up to ``limit`` activity attempts past their start-to-close deadline."""
        return deadline_rows.expire_activity_deadlines(self._db, limit)

    # ---- schedules (see treadle.store.schedules) -------------------------------------------
    def put_schedule(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        """Create (or replace) a schedule."""
        schedule_rows.put_schedule(self._db, record, replace)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        return schedule_rows.get_schedule(self._db, schedule_id)

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        return schedule_rows.list_schedules(self._db)

    def set_schedule_paused(
        self, schedule_id: str, paused: bool, next_slot: datetime | None
    ) -> bool:
        """Pause or resume a schedule; False if there is none."""
        return schedule_rows.set_schedule_paused(self._db, schedule_id, paused, next_slot)

    def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs; False if there was none."""
        return schedule_rows.delete_schedule(self._db, schedule_id)

    def due_schedules(self, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules with a due or buffered slot."""
        return schedule_rows.due_schedules(self._db, now, limit)

    def fire_slot(self, firing: SlotFiring) -> bool:
        """Fire a slot exactly once; False if another runtime did."""
        return schedule_rows.fire_slot(self._db, firing)

    def schedule_runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        """The schedule's latest runs, newest first."""
        return schedule_rows.schedule_runs(self._db, schedule_id, limit)

    # ---- queues (see treadle.store.queues) -------------------------------------------------
    def claim_queued(
        self,
        owner: str,
        queued: QueuedNames,
        limit: int,
        lease_s: float,
        *,
        app_id: str = "",
    ) -> QueueClaim:
        """Lease up to ``limit`` tasks of ``queued`` within its queue's limits."""
        return queue_rows.claim_queued(self._db, owner, queued, limit, lease_s, app_id)

    def put_queue_limits(self, queue: Queue, *, by: str, pinned: bool) -> QueueLimits | None:
        """Store a queue's limits for every worker (see :meth:`QueueStore.put_queue_limits`)."""
        return queue_limit_rows.put_queue_limits(self._db, queue, by, pinned)

    def list_queue_limits(self) -> list[QueueLimits]:
        """The stored limits of every queue, by name."""
        return queue_limit_rows.list_queue_limits(self._db)

    def release_queue_limits(self, name: str) -> bool:
        """Unpin a queue's limits; False if the store has none for it."""
        return queue_limit_rows.release_queue_limits(self._db, name)

    def admit_queued(self, queued: QueuedNames, *, app_id: str = "") -> float | None:
        """Admit waiting instances of ``queued``'s workflows within its queue's limits."""
        return queue_rows.admit_queued(self._db, queued, app_id)

    def claim_admitted(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        exclude: Sequence[str] = (),
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """Claim instances of ``names`` as ``claim_orchestrations`` does, but only those that
        started or that their queue admitted."""
        if limit <= 0:
            return []
        return self._db.run(
            lambda db, conn: claim_orchestrations_in(
                db,
                conn,
                owner,
                limit,
                lease_s,
                exclude,
                app_id=app_id,
                names=names,
                admitted=True,
            )
        )
