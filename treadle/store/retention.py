"""Retention: purging finished instances by filter, in short batches, and the small store-wide
leases that let one worker of a store do a chore at a time.

A store with the :class:`Maintenance` capability deletes finished instances matching a
:class:`PurgeFilter` a batch at a time: each batch is one short transaction, so a purge of a
million instances never holds a lock for long and workers go on committing between batches.
SQLite gives the pages back to the file system after each batch (``PRAGMA
incremental_vacuum``, where the database has ``auto_vacuum=incremental``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from treadle.core.history import OrchestrationStatus
from treadle.core.records import record_class
from treadle.core.validation import parse_duration
from treadle.errors import InvalidInputError, StoreError, WorkflowStateError
from treadle.store.base import Store

__all__ = [
    "PURGE_BATCH",
    "RETENTION_LEASE",
    "Maintenance",
    "PurgeFilter",
    "PurgeOutcome",
    "RetentionPolicy",
    "maintenance_of",
    "purge_by_filter",
]

PURGE_BATCH = 500
"""Instances deleted per transaction by a purge by filter (a few milliseconds of lock)."""

RETENTION_LEASE = "retention"
"""The name of the lease whose holder applies the retention policy (see :mod:`.retention`)."""

_TERMINAL = tuple(s for s in OrchestrationStatus if s.is_terminal)


@record_class
class PurgeFilter:
    """Which finished instances to purge (every condition given must hold).

    Attributes:
        statuses: only these (finished ones only; every finished status if empty).
        name: only this workflow name.
        created_from: created at or after.
        created_to: created before.
        finished_before: finished (last changed) before.
    """

    statuses: tuple[OrchestrationStatus, ...] = ()
    name: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    finished_before: datetime | None = None

    def __post_init__(self) -> None:
        unfinished = [s.name for s in self.statuses if not s.is_terminal]
        if unfinished:
            raise ValueError(
                f"statuses: {', '.join(unfinished)} not finished; only finished instances "
                "(COMPLETED, FAILED, TERMINATED, CANCELED) can be purged"
            )

    @property
    def finished_statuses(self) -> tuple[OrchestrationStatus, ...]:
        """The statuses to purge (every finished one when none was given)."""
        return self.statuses or _TERMINAL


@record_class
class RetentionPolicy:
    """How long finished instances are kept, per status; a status not named is kept for ever.

    ``RetentionPolicy(completed=timedelta(days=7), failed=timedelta(days=30))``: a runtime
    given it (``WorkflowRuntime(retention=...)``) purges COMPLETED instances a week after they
    finished and FAILED ones after 30 days, whichever of a store's runtimes holds the
    retention lease doing it.

    Attributes:
        completed: keep COMPLETED instances this long after they finished.
        failed: likewise FAILED ones.
        terminated: likewise TERMINATED (and CANCELED) ones.
        interval: how often the policy is applied.
    """

    completed: timedelta | None = None
    failed: timedelta | None = None
    terminated: timedelta | None = None
    interval: timedelta = field(default=timedelta(seconds=60))

    def __post_init__(self) -> None:
        for name in ("completed", "failed", "terminated"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, timedelta) or value < timedelta(0)):
                raise ValueError(f"{name}: a timedelta of zero or more, or None, not {value!r}")
        if not isinstance(self.interval, timedelta) or self.interval <= timedelta(0):
            raise ValueError(f"interval: a positive timedelta, not {self.interval!r}")

    @classmethod
    def from_mapping(cls, keep: Mapping[str, timedelta]) -> RetentionPolicy:
        """A policy from ``{"COMPLETED": timedelta(days=7), ...}`` (status names, any case).

        Raises:
            ValueError: a name is not a finished status.
        """
        values: dict[str, timedelta] = {}
        for key, value in keep.items():
            name = key.lower()
            if name == "canceled":
                name = "terminated"
            if name not in ("completed", "failed", "terminated"):
                raise ValueError(
                    f"retention: {key!r} is not a finished status; use COMPLETED, FAILED or "
                    "TERMINATED"
                )
            values[name] = value
        return cls(**values)

    @classmethod
    def parse(cls, text: str) -> RetentionPolicy:
        """A policy from text, as a store URL's ``?retention=`` gives it:
        ``"COMPLETED:7d,FAILED:30d"`` (statuses in any case; durations as ``parse_duration``
        reads them: s, m, h, d, w), and optionally ``interval:1m``.

        Raises:
            InvalidInputError: a part is not ``STATUS:DURATION``, names no finished status,
                or a duration is not one.
        """
        keep: dict[str, timedelta] = {}
        interval: timedelta | None = None
        for part in (p.strip() for p in text.split(",")):
            key, sep, value = part.partition(":")
            if not sep or not key.strip():
                raise InvalidInputError(
                    f"retention {text!r}: {part!r} is not STATUS:DURATION; write it as "
                    "COMPLETED:7d,FAILED:30d (statuses COMPLETED, FAILED, TERMINATED)"
                )
            duration = parse_duration(value, f"retention {key.strip()}:")
            if key.strip().lower() == "interval":
                interval = duration
            else:
                keep[key.strip()] = duration
        try:
            policy = cls.from_mapping(keep)
            return policy if interval is None else replace(policy, interval=interval)
        except ValueError as exc:
            reason = str(exc).removeprefix("retention: ")
            raise InvalidInputError(f"retention {text!r}: {reason}") from None

    @classmethod
    def coerce(
        cls, value: RetentionPolicy | Mapping[str, timedelta] | str | None
    ) -> RetentionPolicy | None:
        """A policy from any form the API takes: a policy, ``{"COMPLETED": timedelta}``,
        the text form of :meth:`parse`, or None."""
        if value is None or isinstance(value, RetentionPolicy):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls.from_mapping(value)

    def filters(self, now: datetime) -> list[PurgeFilter]:
        """The purges the policy asks for at ``now``."""
        out = []
        for statuses, keep in (
            ((OrchestrationStatus.COMPLETED,), self.completed),
            ((OrchestrationStatus.FAILED,), self.failed),
            ((OrchestrationStatus.TERMINATED, OrchestrationStatus.CANCELED), self.terminated),
        ):
            if keep is not None:
                out.append(PurgeFilter(statuses=statuses, finished_before=now - keep))
        return out


@runtime_checkable
class Maintenance(Protocol):
    """A store that purges by filter in batches and keeps small named leases."""

    retention: RetentionPolicy | None
    """The retention policy set on the store (``store.retention = RetentionPolicy(...)``):
    a runtime on it that was given none applies this one."""

    def purge_finished(self, which: PurgeFilter, limit: int, *, dry_run: bool = False) -> list[str]:
        """Delete up to ``limit`` finished instances matching ``which`` (the ones that
        finished first), in one short transaction; return their ids. With ``dry_run``, find
        them and delete nothing. Children are not followed: a child is purged when it
        matches itself."""
        ...

    def reclaim_space(self) -> None:
        """Give freed pages back to the file system where the backend can (SQLite
        ``incremental_vacuum``); a no-op elsewhere."""
        ...

    def try_lease(self, name: str, owner: str, lease_s: float) -> bool:
        """Take or renew the store-wide lease ``name`` for ``lease_s`` seconds; return
        whether ``owner`` holds it now (False: another owner holds a live one)."""
        ...


@record_class
class PurgeOutcome:
    """What a purge by filter did.

    Attributes:
        deleted: how many instances were deleted (children included); with ``dry_run``, how
            many match.
        complete: every matching instance could be deleted (False if a child of one has not
            finished).
    """

    deleted: int
    complete: bool


def maintenance_of(store: Store) -> Maintenance:
    """``store`` as a :class:`~treadle.store.retention.Maintenance` store.

    Raises:
        StoreError: the store cannot purge by filter.
    """
    if not isinstance(store, Maintenance):
        raise StoreError(
            f"the store {type(store).__name__} cannot purge by filter; "
            "use a SQLite or PostgreSQL store"
        )
    return store


def purge_by_filter(
    store: Store,
    which: PurgeFilter,
    *,
    recursive: bool = True,
    dry_run: bool = False,
    batch: int = PURGE_BATCH,
    max_batches: int | None = None,
) -> PurgeOutcome:
    """Delete the finished instances matching ``which``, ``batch`` at a time (each batch one
    short transaction), and with ``recursive`` their descendants; return what was done.

    An instance with a child that has not finished is kept. With ``dry_run`` nothing is
    deleted and the count is of the matching instances (children not counted).

    Args:
        max_batches: stop after this many batches (a retention pass does a bounded amount of
            work at a time); None: until nothing matches.
    """
    maintenance = maintenance_of(store)
    if dry_run:
        return PurgeOutcome(_count(maintenance, which), True)
    deleted = 0
    complete = True
    batches = 0
    while max_batches is None or batches < max_batches:
        ids = maintenance.purge_finished(which, batch)
        batches += 1
        deleted += len(ids)
        if recursive:
            for iid in ids:
                for child in store.child_instance_ids(iid):
                    try:
                        deleted += store.purge_instance(child, recursive=True)
                    except WorkflowStateError:
                        complete = False
        if ids:
            maintenance.reclaim_space()
        if len(ids) < batch:
            break
    return PurgeOutcome(deleted, complete)


def _count(maintenance: Maintenance, which: PurgeFilter) -> int:
    return len(maintenance.purge_finished(which, 2**62, dry_run=True))
