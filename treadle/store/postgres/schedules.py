"""Schedules on PostgresStore (see :mod:`treadle.store.schedules`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from treadle.core.schedules import ScheduleSpec
from treadle.errors import ScheduleAlreadyExistsError
from treadle.store.postgres.connection import Connections
from treadle.store.postgres.instances import create_instances_in, raise_if_refused
from treadle.store.postgres.sql import Conn, Db, utc
from treadle.store.schedules import RUNS_KEPT, ScheduleRecord, ScheduleRun, SlotFiring

__all__ = [
    "delete_schedule",
    "due_schedules",
    "fire_slot",
    "get_schedule",
    "list_schedules",
    "put_schedule",
    "schedule_runs",
    "set_schedule_paused",
]

_COLUMNS = (
    "schedule_id, workflow, spec, input, app_id, paused, next_slot, buffered_slot, "
    "last_instance_id, created_at, updated_at"
)


def _record(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=row[0],
        workflow=row[1],
        spec=ScheduleSpec.from_json(orjson.loads(row[2])),
        input=row[3],
        app_id=row[4],
        paused=bool(row[5]),
        next_slot=row[6],
        buffered_slot=row[7],
        last_instance_id=row[8],
        created_at=row[9],
        updated_at=row[10],
    )


def _opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def put_schedule(connections: Connections, record: ScheduleRecord, replace: bool) -> None:
    """Create (or with ``replace`` replace) a schedule."""
    params = {
        "id": record.schedule_id,
        "workflow": record.workflow,
        "spec": orjson.dumps(record.spec.to_json()).decode(),
        "input": record.input,
        "app": record.app_id,
        "paused": record.paused,
        "next": _opt(record.next_slot),
    }

    def work(db: Db, conn: Conn) -> Callable[[], None]:
        if replace:
            db.execute(conn, "DELETE FROM schedules WHERE schedule_id = %(id)s", params)
            db.execute(conn, "DELETE FROM schedule_runs WHERE schedule_id = %(id)s", params)
        cursor = db.execute(
            conn,
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (%(id)s, %(workflow)s, %(spec)s, "
            "%(input)s, %(app)s, %(paused)s, %(next)s, NULL, NULL, {now}, {now}) "
            "ON CONFLICT (schedule_id) DO NOTHING RETURNING 1",
            params,
        )

        def read() -> None:
            if cursor.fetchone() is None:
                raise ScheduleAlreadyExistsError(
                    f"schedule {record.schedule_id!r} already exists; delete it first, or "
                    "choose another id"
                )

        return read

    connections.write(work)


def get_schedule(connections: Connections, schedule_id: str) -> ScheduleRecord | None:
    """The schedule, or None."""
    rows = connections.run(
        lambda db, conn: db.execute(
            conn,
            f"SELECT {_COLUMNS} FROM schedules WHERE schedule_id = %(id)s",
            {"id": schedule_id},
        ).fetchall()
    )
    return _record(rows[0]) if rows else None


def list_schedules(connections: Connections) -> list[ScheduleRecord]:
    """Every schedule, by id."""
    rows = connections.run(
        lambda db, conn: db.execute(
            conn, f"SELECT {_COLUMNS} FROM schedules ORDER BY schedule_id"
        ).fetchall()
    )
    return [_record(r) for r in rows]


def set_schedule_paused(
    connections: Connections, schedule_id: str, paused: bool, next_slot: datetime | None
) -> bool:
    """Pause or resume; False if there is no such schedule."""
    rows = connections.statement(
        "UPDATE schedules SET paused = %(paused)s, next_slot = %(next)s, buffered_slot = NULL, "
        "updated_at = {now} WHERE schedule_id = %(id)s RETURNING 1",
        {"id": schedule_id, "paused": paused, "next": _opt(next_slot)},
    )
    return bool(rows)


def delete_schedule(connections: Connections, schedule_id: str) -> bool:
    """Delete a schedule and its runs; False if there was none."""
    rows = connections.statement(
        "WITH runs AS (DELETE FROM schedule_runs WHERE schedule_id = %(id)s) "
        "DELETE FROM schedules WHERE schedule_id = %(id)s RETURNING 1",
        {"id": schedule_id},
    )
    return bool(rows)


def due_schedules(connections: Connections, now: datetime, limit: int) -> list[ScheduleRecord]:
    """Unpaused schedules with a due or buffered slot, by next slot."""
    rows = connections.run(
        lambda db, conn: db.execute(
            conn,
            f"SELECT {_COLUMNS} FROM schedules WHERE NOT paused "
            "AND (next_slot <= %(due_at)s OR buffered_slot IS NOT NULL) "
            "ORDER BY next_slot LIMIT %(limit)s",
            {"due_at": utc(now), "limit": limit},
        ).fetchall()
    )
    return [_record(r) for r in rows]


class _Lost(Exception):
    """Another runtime fired the slot first: roll back."""


def fire_slot(connections: Connections, firing: SlotFiring) -> bool:
    """Commit ``firing`` (see :meth:`~treadle.store.schedules.ScheduleStore.fire_slot`)."""
    params = {
        "id": firing.schedule_id,
        "expected": _opt(firing.expected_next),
        "next": _opt(firing.new_next),
        "buffered": _opt(firing.buffered_slot),
        "instance": firing.start.instance_id if firing.start else None,
        "slot": utc(firing.slot),
        "kept": RUNS_KEPT - 1,
    }

    def work(db: Db, conn: Conn) -> Callable[[], bool]:
        moved = db.execute(
            conn,
            "UPDATE schedules SET next_slot = %(next)s, buffered_slot = %(buffered)s, "
            "last_instance_id = COALESCE(%(instance)s, last_instance_id), updated_at = {now} "
            "WHERE schedule_id = %(id)s AND next_slot IS NOT DISTINCT FROM %(expected)s "
            "RETURNING 1",
            params,
        ).fetchall()
        if not moved:
            raise _Lost
        if firing.record_run:
            added = db.execute(
                conn,
                "INSERT INTO schedule_runs (schedule_id, slot, instance_id, fired_at) "
                "VALUES (%(id)s, %(slot)s, %(instance)s, {now}) ON CONFLICT DO NOTHING "
                "RETURNING 1",
                params,
            ).fetchall()
            if not added:
                raise _Lost
            db.execute(
                conn,
                "DELETE FROM schedule_runs WHERE schedule_id = %(id)s AND slot < (SELECT slot "
                "FROM schedule_runs WHERE schedule_id = %(id)s ORDER BY slot DESC LIMIT 1 "
                "OFFSET %(kept)s)",
                params,
            )
        if firing.start is not None:
            statuses = db.lock_statuses(conn, [firing.start.instance_id])()
            refused, conflicts = create_instances_in(
                db, conn, [firing.start], statuses, db.now(conn)
            )
            raise_if_refused(refused)
            raise_if_refused(conflicts())
        return lambda: True

    try:
        return connections.write(work, notify=firing.start is not None, idempotent=False)
    except _Lost:
        return False


def schedule_runs(connections: Connections, schedule_id: str, limit: int) -> list[ScheduleRun]:
    """The schedule's latest runs, newest first."""
    rows = connections.run(
        lambda db, conn: db.execute(
            conn,
            "SELECT slot, instance_id, fired_at FROM schedule_runs WHERE schedule_id = %(id)s "
            "ORDER BY slot DESC LIMIT %(limit)s",
            {"id": schedule_id, "limit": limit},
        ).fetchall()
    )
    return [ScheduleRun(r[0], r[1], r[2]) for r in rows]
