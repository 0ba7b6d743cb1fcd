"""Schedules from the client's side: create, list, get, pause, resume, trigger and delete
(see :mod:`treadle.store.schedules` for how slots fire).

:class:`ScheduleOperations` works with JSON text, as :class:`~treadle.client.InstanceOperations`
does: the Python client, the HTTP API and the CLI go through it. Runs on the caller's thread;
it holds no state but the store.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from treadle.core.records import record_class
from treadle.core.schedules import Overlap, ScheduleSpec, next_slot
from treadle.core.validation import check_json, validate_name
from treadle.errors import InvalidInputError, ScheduleNotFoundError, StoreError
from treadle.store.base import Store
from treadle.store.schedules import (
    ScheduleRecord,
    ScheduleRun,
    ScheduleStore,
    trigger_firing,
)

__all__ = ["ScheduleDescription", "ScheduleOperations"]

RECENT_RUNS = 10
"""Runs a :class:`ScheduleDescription` lists."""


@record_class
class ScheduleDescription:
    """A schedule as the client reports it.

    Attributes:
        schedule_id: its id.
        workflow: the workflow it starts.
        spec: when it fires (cron or every, zone, bounds, overlap, catch-up window).
        serialized_input: the JSON text each instance gets.
        paused: it fires nothing until resumed.
        next_slot: the next time it fires (None while paused or when no slot is left).
        recent_runs: its latest slots, newest first (``instance_id`` None: skipped).
        created_at: when it was created.
    """

    schedule_id: str
    workflow: str
    spec: ScheduleSpec
    serialized_input: str | None
    paused: bool
    next_slot: datetime | None
    recent_runs: list[ScheduleRun]
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The description as JSON values (the HTTP API's and the CLI's)."""
        return {
            "schedule_id": self.schedule_id,
            "workflow": self.workflow,
            "spec": self.spec.to_json(),
            "input": self.serialized_input,
            "paused": self.paused,
            "next_slot": self.next_slot.isoformat() if self.next_slot else None,
            "created_at": self.created_at.isoformat(),
            "recent_runs": [
                {"slot": r.slot.isoformat(), "instance_id": r.instance_id} for r in self.recent_runs
            ],
        }


def _validate_id(schedule_id: Any) -> str:
    checked = validate_name(schedule_id, "schedule id")
    if "@" in checked:
        raise InvalidInputError(
            f"schedule id {checked!r} contains '@', which separates the schedule from the "
            "slot in the ids of the instances it starts; choose another id"
        )
    return checked


class ScheduleOperations:
    """Create and manage the schedules of a store; inputs are JSON text.

    Args:
        store: the store (it must keep schedules: SQLite and PostgreSQL do).
        app_id: the app whose workers run the instances of the schedules it creates.
    Times ("now") are the store's clock.
    """

    def __init__(self, store: Store, *, app_id: str = "") -> None:
        if not isinstance(store, ScheduleStore):
            raise StoreError(
                f"the store {type(store).__name__} keeps no schedules; "
                "use a SQLite or PostgreSQL store"
            )
        self._store: ScheduleStore = store
        self._app_id = app_id

    def create(
        self,
        schedule_id: str,
        workflow: str,
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        input: str | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        overlap: str | Overlap = Overlap.SKIP,
        catchup_window: timedelta = timedelta(hours=1),
        time_zone: str = "UTC",
        replace: bool = False,
    ) -> str:
        """Create a schedule; return its id (see :meth:`treadle.WorkflowClient.create_schedule`).

        Raises:
            InvalidInputError: a bad id, name, input or spec.
            ScheduleAlreadyExistsError: the id is taken (and not ``replace``).
        """
        schedule_id = _validate_id(schedule_id)
        workflow = validate_name(workflow, "workflow name")
        try:
            overlap = Overlap(overlap)
        except ValueError:
            raise InvalidInputError(
                f"overlap {overlap!r}: use 'skip', 'buffer_one' or 'allow'"
            ) from None
        now = self._store.now()
        if start_at is not None and (not isinstance(start_at, datetime) or not start_at.tzinfo):
            raise InvalidInputError(f"start_at must be an aware datetime, not {start_at!r}")
        spec = ScheduleSpec(
            anchor=(start_at or now).astimezone(timezone.utc).replace(microsecond=0),
            cron=cron,
            every=every,
            time_zone=time_zone,
            start_at=start_at,
            end_at=end_at,
            overlap=overlap,
            catchup_window=catchup_window,
        )
        record = ScheduleRecord(
            schedule_id=schedule_id,
            workflow=workflow,
            spec=spec,
            input=check_json(input, "input"),
            app_id=self._app_id,
            next_slot=next_slot(spec, now),
        )
        self._store.put_schedule(record, replace=replace)
        return schedule_id

    def get(self, schedule_id: str) -> ScheduleDescription | None:
        """The schedule, or None if there is none."""
        record = self._store.get_schedule(_validate_id(schedule_id))
        return None if record is None else self._describe(record)

    def list(self) -> list[ScheduleDescription]:
        """Every schedule, by id."""
        return [self._describe(r) for r in self._store.list_schedules()]

    def pause(self, schedule_id: str) -> None:
        """Stop firing until resumed.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        if not self._store.set_schedule_paused(_validate_id(schedule_id), True, None):
            raise _not_found(schedule_id)

    def resume(self, schedule_id: str) -> None:
        """Fire again from the next slot after now (slots passed while paused are skipped).

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        record = self._require(schedule_id)
        upcoming = next_slot(record.spec, self._store.now())
        self._store.set_schedule_paused(record.schedule_id, False, upcoming)

    def trigger(self, schedule_id: str) -> str:
        """Start the schedule's workflow now, whatever its overlap policy (paused or not);
        return the instance id. Its slots are left as they are.

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        for attempt in range(10):  # (lost only to a slot firing at that moment)
            record = self._require(schedule_id)
            firing = trigger_firing(record, self._store.now() + timedelta(seconds=attempt))
            if self._store.fire_slot(firing):
                assert firing.start is not None
                return firing.start.instance_id
        raise StoreError(f"could not trigger schedule {schedule_id!r}: it kept changing")

    def delete(self, schedule_id: str) -> None:
        """Delete the schedule (the instances it started stay).

        Raises:
            ScheduleNotFoundError: no such schedule.
        """
        if not self._store.delete_schedule(_validate_id(schedule_id)):
            raise _not_found(schedule_id)

    def _require(self, schedule_id: str) -> ScheduleRecord:
        record = self._store.get_schedule(_validate_id(schedule_id))
        if record is None:
            raise _not_found(schedule_id)
        return record

    def _describe(self, record: ScheduleRecord) -> ScheduleDescription:
        return ScheduleDescription(
            schedule_id=record.schedule_id,
            workflow=record.workflow,
            spec=record.spec,
            serialized_input=record.input,
            paused=record.paused,
            next_slot=record.next_slot,
            recent_runs=self._store.schedule_runs(record.schedule_id, RECENT_RUNS),
            created_at=record.created_at,
        )


def _not_found(schedule_id: str) -> ScheduleNotFoundError:
    return ScheduleNotFoundError(
        f"no schedule with id {schedule_id!r}; list them with `treadle schedule list`"
    )
