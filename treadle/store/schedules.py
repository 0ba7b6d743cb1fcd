"""Durable schedules in the store, and firing their due slots exactly once.

A schedule row holds its spec (:class:`~treadle.core.schedules.ScheduleSpec`), the workflow
and input it starts, and ``next_slot``, the next time it fires. Every runtime of a store looks
for due schedules about once a second (:func:`fire_due`); firing a slot is one transaction
that moves ``next_slot`` on only if it is still the slot fired (a compare-and-set) and
inserts the slot's row in ``schedule_runs``, whose primary key (schedule, slot) refuses a
second firing, and creates the instance. However many runtimes see the slot due at once,
exactly one of those transactions commits; the others change nothing.

Each instance a slot starts has the id ``{schedule_id}@{slot}`` (the slot as
``2026-12-07T03:00:00Z``), its ``ExecutionStarted`` carries the slot as its scheduled start,
and ``schedule_runs`` records (schedule, slot, instance).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import field
from datetime import datetime, timedelta, timezone
from typing import Protocol, runtime_checkable

from treadle.core.records import record_class
from treadle.core.schedules import Overlap, ScheduleSpec, next_slot
from treadle.store.base import NewInstance, Store, new_execution_id

__all__ = [
    "FIRE_LIMIT",
    "RUNS_KEPT",
    "ScheduleRecord",
    "ScheduleRun",
    "ScheduleStore",
    "SlotFiring",
    "fire_due",
    "slot_instance_id",
]

logger = logging.getLogger(__name__)

FIRE_LIMIT = 100
"""Schedules looked at per pass of :func:`fire_due`."""

RUNS_KEPT = 100
"""Runs kept per schedule (older ones are deleted as new slots fire; the compare-and-set on
``next_slot`` keeps an old slot from firing again)."""


@record_class
class ScheduleRecord:
    """A schedule as stored.

    Attributes:
        schedule_id: its id.
        workflow: the workflow name it starts.
        spec: when it fires.
        input: the JSON text each instance gets.
        app_id: the app whose workers run its instances.
        paused: it fires nothing until resumed.
        next_slot: the next slot to fire (None: none left).
        buffered_slot: a slot waiting for the running instance to finish (``buffer_one``).
        last_instance_id: the instance its last fired slot started.
        created_at: when it was created.
        updated_at: when it last changed.
    """

    schedule_id: str
    workflow: str
    spec: ScheduleSpec
    input: str | None = None
    app_id: str = ""
    paused: bool = False
    next_slot: datetime | None = None
    buffered_slot: datetime | None = None
    last_instance_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    updated_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@record_class
class ScheduleRun:
    """A slot of a schedule that fired (or was skipped: no instance).

    Attributes:
        slot: the slot's time.
        instance_id: the instance it started, None if it was skipped.
        fired_at: when.
    """

    slot: datetime
    instance_id: str | None
    fired_at: datetime


@record_class
class SlotFiring:
    """One slot's firing, committed by :meth:`ScheduleStore.fire_slot` as one transaction.

    Attributes:
        schedule_id: the schedule.
        slot: the slot (the key of its ``schedule_runs`` row).
        expected_next: the schedule's ``next_slot`` as read (the compare of compare-and-set).
        new_next: its ``next_slot`` after this firing.
        buffered_slot: its ``buffered_slot`` after this firing.
        start: the instance to create (None: the slot is skipped or buffered).
        record_run: insert the slot's ``schedule_runs`` row (a slot merely buffered has none
            yet).
    """

    schedule_id: str
    slot: datetime
    expected_next: datetime | None
    new_next: datetime | None
    buffered_slot: datetime | None
    start: NewInstance | None
    record_run: bool = True


@runtime_checkable
class ScheduleStore(Protocol):
    """A store that keeps schedules (see the module)."""

    def now(self) -> datetime:
        """The store's clock."""
        ...

    def put_schedule(self, record: ScheduleRecord, *, replace: bool = False) -> None:
        """Create a schedule (replacing one with its id if ``replace``).

        Raises:
            ScheduleAlreadyExistsError: one has the id and not ``replace``.
        """
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule, or None."""
        ...

    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""
        ...

    def set_schedule_paused(
        self, schedule_id: str, paused: bool, next_slot: datetime | None
    ) -> bool:
        """Pause or resume a schedule, setting its next slot; False if there is none."""
        ...

    def delete_schedule(self, schedule_id: str) -> bool:
        """Delete a schedule and its runs (not the instances); False if there was none."""
        ...

    def due_schedules(self, now: datetime, limit: int) -> list[ScheduleRecord]:
        """Unpaused schedules with a slot due at ``now`` or a buffered slot, by next slot."""
        ...

    def fire_slot(self, firing: SlotFiring) -> bool:
        """Commit ``firing`` if the schedule's next slot is still ``expected_next`` and the
        slot has no run yet; return whether it was committed (False: another runtime did)."""
        ...

    def schedule_runs(self, schedule_id: str, limit: int) -> list[ScheduleRun]:
        """The schedule's latest runs, newest first."""
        ...


def slot_instance_id(schedule_id: str, slot: datetime) -> str:
    """The id of the instance a slot starts: ``{schedule_id}@2026-12-07T03:00:00Z``."""
    return f"{schedule_id}@{slot.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def _instance(record: ScheduleRecord, slot: datetime) -> NewInstance:
    return NewInstance(
        instance_id=slot_instance_id(record.schedule_id, slot),
        name=record.workflow,
        input=record.input,
        execution_id=new_execution_id(),
        scheduled_start=slot,
        app_id=record.app_id,
    )


def _is_running(store: Store, instance_id: str | None) -> bool:
    if instance_id is None:
        return False
    instance = store.get_instance(instance_id)
    return instance is not None and not instance.status.is_terminal


def fire_due(store: ScheduleStore, now: datetime, *, limit: int = FIRE_LIMIT) -> int:
    """Fire the slots of ``store``'s schedules due at ``now``; return how many instances
    were started. Safe to call from any number of runtimes at once (see the module)."""
    assert isinstance(store, Store)
    started = 0
    for record in store.due_schedules(now, limit):
        try:
            started += _fire_schedule(store, record, now)
        except Exception:
            logger.exception("could not fire schedule %r", record.schedule_id)
    return started


def _fire_schedule(store: ScheduleStore, record: ScheduleRecord, now: datetime) -> int:
    assert isinstance(store, Store)
    spec = record.spec
    started = 0
    running = _is_running(store, record.last_instance_id)
    buffered = record.buffered_slot
    if buffered is not None and not running:  # the buffered slot's turn has come
        start = _instance(record, buffered)
        if not store.fire_slot(
            SlotFiring(
                record.schedule_id, buffered, record.next_slot, record.next_slot, None, start
            )
        ):
            return 0
        started += 1
        running = True
        record = _after(record, record.next_slot, None, start.instance_id)
        buffered = None
    slot = record.next_slot
    while slot is not None and slot <= now:
        oldest = now - spec.catchup_window
        if slot < oldest:  # missed while nobody ran: skip to the window in one step
            new_next = next_slot(spec, oldest - timedelta(microseconds=1))
            firing = SlotFiring(
                record.schedule_id, slot, slot, new_next, buffered, None, record_run=False
            )
        else:
            new_next = next_slot(spec, slot)
            firing = _firing(record, slot, new_next, running, buffered)
        if not store.fire_slot(firing):
            return started  # another runtime fired it: it carries on from there
        if firing.start is not None:
            started += 1
            running = True
        buffered = firing.buffered_slot
        record = _after(
            record,
            new_next,
            buffered,
            firing.start.instance_id if firing.start else record.last_instance_id,
        )
        slot = new_next
    return started


def _firing(
    record: ScheduleRecord,
    slot: datetime,
    new_next: datetime | None,
    running: bool,
    buffered: datetime | None,
) -> SlotFiring:
    overlap = record.spec.overlap
    if running and overlap is Overlap.SKIP:
        return SlotFiring(record.schedule_id, slot, slot, new_next, buffered, None)
    if running and overlap is Overlap.BUFFER_ONE:
        if buffered is None:  # this slot waits for the running instance
            return SlotFiring(record.schedule_id, slot, slot, new_next, slot, None, False)
        return SlotFiring(record.schedule_id, slot, slot, new_next, buffered, None)
    return SlotFiring(record.schedule_id, slot, slot, new_next, buffered, _instance(record, slot))


def _after(
    record: ScheduleRecord,
    new_next: datetime | None,
    buffered: datetime | None,
    last_instance_id: str | None,
) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=record.schedule_id,
        workflow=record.workflow,
        spec=record.spec,
        input=record.input,
        app_id=record.app_id,
        paused=record.paused,
        next_slot=new_next,
        buffered_slot=buffered,
        last_instance_id=last_instance_id,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def trigger_firing(record: ScheduleRecord, now: datetime) -> SlotFiring:
    """The firing of a slot at ``now`` asked for by hand (``trigger_schedule``): it starts an
    instance whatever the overlap policy, and leaves the schedule's slots as they are."""
    slot = now.astimezone(timezone.utc).replace(microsecond=0)
    return SlotFiring(
        record.schedule_id,
        slot,
        record.next_slot,
        record.next_slot,
        record.buffered_slot,
        _instance(record, slot),
    )


def sorted_records(records: Sequence[ScheduleRecord]) -> list[ScheduleRecord]:
    """Records by id."""
    return sorted(records, key=lambda r: r.schedule_id)
