"""Creating and paging instances for PostgresStore.

A new instance id costs one statement (:data:`CREATE_SQL`): ``INSERT ... ON CONFLICT DO
NOTHING`` of the instance and, joined to it, of its ExecutionStarted message, whose time the
database fills in (its clock, like the instance's ``created_at``). An id in use, or a rerun
from a given history, takes the locking path of :meth:`PostgresStore.create_instance`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from psycopg import pq

from treadle.core.history import EPOCH
from treadle.errors import InvalidInputError
from treadle.store.base import InstanceRecord, NewInstance
from treadle.store.postgres_turns import Conn, Db, insert_messages, utc
from treadle.store.serde import encode_event, instance_from_row

__all__ = [
    "CREATE_SQL",
    "GET_SQL",
    "RECORD_COLUMNS",
    "adopt_history",
    "create_params",
    "decode_cursor",
    "encode_cursor",
    "instance_from_text",
]

# The ExecutionStarted event is encoded here with a placeholder time, and the database puts
# its clock's reading (the instance's created_at) in its place.
_STARTED_AT = '"timestamp":"' + EPOCH.isoformat() + '"'
_ISO_UTC = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''
CREATE_SQL = (
    "WITH created AS (INSERT INTO instances (instance_id, name, status, execution_id, input, "
    "  created_at, updated_at, parent_instance_id) VALUES (%(iid)s, %(name)s, 'PENDING', "
    "  %(eid)s, %(input)s, {now}, {now}, %(parent)s) "
    "  ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id, created_at), "
    "started AS (INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
    "  SELECT instance_id, %(eid)s, %(head)s || "
    f"  to_char(created_at AT TIME ZONE 'UTC', {_ISO_UTC}) || %(tail)s, "
    "  GREATEST(created_at, %(start)s::timestamptz) FROM created) "
    "SELECT {notify_orch} FROM created"
)


# An instance's row as text (:func:`instance_from_text` reads it): its times as microseconds
# since the epoch (exact, where a float of seconds is not).
RECORD_COLUMNS = (
    "instance_id, name, status, execution_id, input, output, custom_status, failure, "
    "(extract(epoch FROM created_at) * 1000000)::bigint, "
    "(extract(epoch FROM updated_at) * 1000000)::bigint, "
    "parent_instance_id, history_len, version"
)
_N_RECORD_COLUMNS = len(RECORD_COLUMNS.split(", "))
# One instance, read through libpq (the clients' waits read it after every wake-up).
GET_SQL = f"SELECT {RECORD_COLUMNS} FROM instances WHERE instance_id = %(iid)s"


def instance_from_text(
    result: pq.abc.PGresult, row_number: int = 0, first: int = 0
) -> InstanceRecord | None:
    """The instance in :data:`RECORD_COLUMNS` of a text result (in row ``row_number``, from
    column ``first`` on), or None if there is no such row (:data:`GET_SQL` found none)."""
    if result.ntuples <= row_number:
        return None
    texts = (result.get_value(row_number, first + k) for k in range(_N_RECORD_COLUMNS))
    row: list[Any] = [None if t is None else t.decode() for t in texts]
    for times in (8, 9):  # (microseconds since the epoch)
        row[times] = EPOCH + timedelta(microseconds=int(row[times]))
    row[11], row[12] = int(row[11]), int(row[12])
    return instance_from_row(row)


def adopt_history(db: Db, conn: Conn, new: NewInstance) -> None:
    """Start a just-created instance from a given history (a rerun), RUNNING: its
    ExecutionStarted message goes, the history, activity tasks and timers come."""
    iid = new.instance_id
    conn.execute("DELETE FROM inbox WHERE instance_id = %s", (iid,))
    conn.execute(
        "INSERT INTO history (instance_id, seq, event) "
        "SELECT %s, seq - 1, event FROM unnest(%s::text[]) WITH ORDINALITY AS h(event, seq)",
        (iid, [encode_event(e) for e in new.history]),
    )
    conn.execute(
        "UPDATE instances SET status = 'RUNNING', history_len = %s WHERE instance_id = %s",
        (len(new.history), iid),
    )
    if new.activities:
        conn.execute(
            "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
            "task_execution_id, visible_at) "
            "SELECT iid, eid, task_id, name, input, teid, clock_timestamp() "
            "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::text[], "
            "  %s::text[]) WITH ORDINALITY AS a(iid, eid, task_id, name, input, teid, ord) "
            "ORDER BY ord",
            (
                [t.instance_id for t in new.activities],
                [t.execution_id for t in new.activities],
                [t.task_id for t in new.activities],
                [t.name for t in new.activities],
                [t.input for t in new.activities],
                [t.task_execution_id for t in new.activities],
            ),
        )
    insert_messages(db, conn, list(new.messages))


def create_params(new: NewInstance) -> dict[str, Any] | None:
    """The parameters of :data:`CREATE_SQL` for ``new``, or None if it cannot serve (a
    rerun, which has no ExecutionStarted message)."""
    if new.history or new.activities or new.messages:
        return None  # a rerun: no ExecutionStarted message
    event = encode_event(new.started_event(EPOCH))
    at = event.find(_STARTED_AT)
    if at < 0 or event.find(_STARTED_AT, at + 1) >= 0:
        return None
    return {
        "iid": new.instance_id,
        "name": new.name,
        "eid": new.execution_id,
        "input": new.input,
        "parent": new.parent.instance_id if new.parent else None,
        "head": event[: at + len('"timestamp":"')],
        "tail": '"' + event[at + len(_STARTED_AT) :],
        "start": utc(new.scheduled_start) if new.scheduled_start else None,
    }


def encode_cursor(record: InstanceRecord) -> str:
    """A page cursor: where a page of instances (newest first) ended."""
    micros = (utc(record.created_at) - EPOCH) // timedelta(microseconds=1)
    return f"{micros}|{record.instance_id}"


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (created_at, instance_id) a page cursor from :func:`encode_cursor` stands for.

    Raises:
        InvalidInputError: not a cursor this store returned.
    """
    try:
        micros, after_id = cursor.split("|", 1)
        return EPOCH + timedelta(microseconds=int(micros)), after_id
    except ValueError as exc:
        raise InvalidInputError(f"bad page cursor {cursor!r}") from exc
