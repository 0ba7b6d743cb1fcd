"""Schedules on SqliteStore (see :mod:`treadle.store.schedules`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from treadle.core.schedules import ScheduleSpec
from treadle.errors import ScheduleAlreadyExistsError
from treadle.store.schedules import RUNS_KEPT, ScheduleRecord, ScheduleRun, SlotFiring
from treadle.store.serde import from_epoch, to_epoch
from treadle.store.sqlite.connection import Connections
from treadle.store.sqlite.rows import create_instance

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


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else to_epoch(value)


def _when(value: float | None) -> datetime | None:
    return None if value is None else from_epoch(value)


def _record(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        schedule_id=row[0],
        workflow=row[1],
        spec=ScheduleSpec.from_json(orjson.loads(row[2])),
        input=row[3],
        app_id=row[4],
        paused=bool(row[5]),
        next_slot=_when(row[6]),
        buffered_slot=_when(row[7]),
        last_instance_id=row[8],
        created_at=from_epoch(row[9]),
        updated_at=from_epoch(row[10]),
    )


def put_schedule(db: Connections, record: ScheduleRecord, replace: bool, now: float) -> None:
    """Create (or with ``replace`` replace) a schedule."""
    with db.errors(), db.write(notify=False) as conn:
        exists = conn.execute(
            "SELECT 1 FROM schedules WHERE schedule_id = ?", (record.schedule_id,)
        ).fetchone()
        if exists and not replace:
            raise ScheduleAlreadyExistsError(
                f"schedule {record.schedule_id!r} already exists; delete it first, or "
                "choose another id"
            )
        conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (record.schedule_id,))
        conn.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (record.schedule_id,))
        conn.execute(
            f"INSERT INTO schedules ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.schedule_id,
                record.workflow,
                orjson.dumps(record.spec.to_json()).decode(),
                record.input,
                record.app_id,
                int(record.paused),
                _epoch(record.next_slot),
                None,
                None,
                now,
                now,
            ),
        )


def get_schedule(db: Connections, schedule_id: str) -> ScheduleRecord | None:
    """The schedule, or None."""
    with db.errors():
        row = (
            db.conn()
            .execute(f"SELECT {_COLUMNS} FROM schedules WHERE schedule_id = ?", (schedule_id,))
            .fetchone()
        )
    return None if row is None else _record(row)


def list_schedules(db: Connections) -> list[ScheduleRecord]:
    """Every schedule, by id."""
    with db.errors():
        rows = db.conn().execute(f"SELECT {_COLUMNS} FROM schedules ORDER BY schedule_id")
        return [_record(r) for r in rows]


def set_schedule_paused(
    db: Connections, schedule_id: str, paused: bool, next_slot: datetime | None, now: float
) -> bool:
    """Pause or resume; False if there is no such schedule."""
    with db.errors(), db.write(notify=False) as conn:
        cur = conn.execute(
            "UPDATE schedules SET paused = ?, next_slot = ?, buffered_slot = NULL, "
            "updated_at = ? WHERE schedule_id = ?",
            (int(paused), _epoch(next_slot), now, schedule_id),
        )
        return cur.rowcount > 0


def delete_schedule(db: Connections, schedule_id: str) -> bool:
    """Delete a schedule and its runs; False if there was none."""
    with db.errors(), db.write(notify=False) as conn:
        conn.execute("DELETE FROM schedule_runs WHERE schedule_id = ?", (schedule_id,))
        cur = conn.execute("DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,))
        return cur.rowcount > 0


def due_schedules(db: Connections, now: datetime, limit: int) -> list[ScheduleRecord]:
    """Unpaused schedules with a due or buffered slot, by next slot."""
    with db.errors():
        rows = db.conn().execute(
            f"SELECT {_COLUMNS} FROM schedules WHERE paused = 0 "
            "AND (next_slot <= ? OR buffered_slot IS NOT NULL) ORDER BY next_slot LIMIT ?",
            (to_epoch(now), limit),
        )
        return [_record(r) for r in rows]


class _Lost(Exception):
    """Another runtime fired the slot first: roll back."""


def fire_slot(db: Connections, firing: SlotFiring, now: float) -> bool:
    """Commit ``firing`` (see :meth:`~treadle.store.schedules.ScheduleStore.fire_slot`)."""
    try:
        with db.errors(), db.write(kinds=(firing.start is not None, False)) as conn:
            _fire(conn, firing, now)
    except _Lost:
        return False
    return True


def _fire(conn: sqlite3.Connection, firing: SlotFiring, now: float) -> None:
    expected = _epoch(firing.expected_next)
    moved = conn.execute(
        "UPDATE schedules SET next_slot = ?, buffered_slot = ?, "
        "last_instance_id = COALESCE(?, last_instance_id), updated_at = ? "
        "WHERE schedule_id = ? AND next_slot IS ?",
        (
            _epoch(firing.new_next),
            _epoch(firing.buffered_slot),
            firing.start.instance_id if firing.start else None,
            now,
            firing.schedule_id,
            expected,
        ),
    )
    if moved.rowcount != 1:
        raise _Lost
    if firing.record_run:
        slot = to_epoch(firing.slot)
        added = conn.execute(
            "INSERT INTO schedule_runs (schedule_id, slot, instance_id, fired_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (firing.schedule_id, slot, firing.start.instance_id if firing.start else None, now),
        )
        if added.rowcount != 1:
            raise _Lost
        conn.execute(
            "DELETE FROM schedule_runs WHERE schedule_id = ? AND slot < (SELECT slot FROM "
            "schedule_runs WHERE schedule_id = ? ORDER BY slot DESC LIMIT 1 OFFSET ?)",
            (firing.schedule_id, firing.schedule_id, RUNS_KEPT - 1),
        )
    if firing.start is not None:
        create_instance(conn, firing.start, now)


def schedule_runs(db: Connections, schedule_id: str, limit: int) -> list[ScheduleRun]:
    """The schedule's latest runs, newest first."""
    with db.errors():
        rows = db.conn().execute(
            "SELECT slot, instance_id, fired_at FROM schedule_runs WHERE schedule_id = ? "
            "ORDER BY slot DESC LIMIT ?",
            (schedule_id, limit),
        )
        return [ScheduleRun(from_epoch(r[0]), r[1], from_epoch(r[2])) for r in rows]
