"""Creating, reading and paging instances for PostgresStore, and sending them messages.

A new instance id costs one statement (:data:`CREATE_SQL`): ``INSERT ... ON CONFLICT DO
NOTHING`` of the instance and, joined to it, of its ExecutionStarted message, whose time the
database fills in (its clock, like the instance's ``created_at``). An id in use, or a rerun
from a given history, takes the locking path of :meth:`PostgresStore.create_instance`
(:func:`create_instances_in`, which the general group commit also uses for children).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg import pq

from treadle.core.history import EPOCH
from treadle.errors import InvalidInputError, WorkflowAlreadyExistsError
from treadle.store.base import InstanceRecord, NewInstance, NewMessage
from treadle.store.postgres.sql import Conn, Db, utc
from treadle.store.serde import encode_event, encode_propagation, instance_from_row

__all__ = [
    "CREATE_SQL",
    "GET_SQL",
    "RECORD_COLUMNS",
    "Refusals",
    "adopt_history",
    "create_instances_in",
    "create_params",
    "decode_cursor",
    "encode_cursor",
    "insert_messages",
    "instance_from_text",
    "raise_if_refused",
]

# The ExecutionStarted event is encoded here with a placeholder time, and the database puts
# its clock's reading (the instance's created_at) in its place.
_STARTED_AT = '"timestamp":"' + EPOCH.isoformat() + '"'
_ISO_UTC = '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\''
CREATE_SQL = (
    "WITH created AS (INSERT INTO instances (instance_id, name, status, execution_id, input, "
    "  created_at, updated_at, parent_instance_id, app_id) VALUES (%(iid)s, %(name)s, "
    "  'PENDING', %(eid)s, %(input)s, {now}, {now}, %(parent)s, %(app)s) "
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
    "parent_instance_id, history_len, version, app_id, waiting"
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
            "task_execution_id, visible_at, propagated, app_id) "
            "SELECT iid, eid, task_id, name, input, teid, clock_timestamp(), prop, app "
            "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::text[], "
            "  %s::text[], %s::text[], %s::text[]) WITH ORDINALITY "
            "  AS a(iid, eid, task_id, name, input, teid, prop, app, ord) ORDER BY ord",
            (
                [t.instance_id for t in new.activities],
                [t.execution_id for t in new.activities],
                [t.task_id for t in new.activities],
                [t.name for t in new.activities],
                [t.input for t in new.activities],
                [t.task_execution_id for t in new.activities],
                [encode_propagation(t.propagated) for t in new.activities],
                [t.app_id for t in new.activities],
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
        "app": new.app_id,
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
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(f"bad page cursor {cursor!r}") from exc


def _already_exists(instance_id: str, status: str) -> str:
    return (
        f"workflow instance {instance_id!r} already exists and is {status}; "
        "wait for it to finish, terminate it, or choose another instance id"
    )


def raise_if_refused(refused: Sequence[tuple[NewInstance, str]]) -> None:
    """Raise WorkflowAlreadyExistsError for the first refused instance, if any."""
    if refused:
        raise WorkflowAlreadyExistsError(refused[0][1])


Refusals = list[tuple[NewInstance, str]]


def create_instances_in(
    db: Db,
    conn: Conn,
    news: Sequence[NewInstance],
    statuses: dict[str, str],
    now: datetime,
) -> tuple[Refusals, Callable[[], Refusals]]:
    """Create instances with their ExecutionStarted messages.

    Args:
        statuses: the locked statuses of existing instances with these ids; updated with the
            instances created here.

    Returns:
        (instance, reason) for each id an unfinished instance already has; and a function
        that returns those another transaction created meanwhile (nothing was written for
        them), to call once the results are wanted (it waits for them).
    """
    refused: Refusals = []
    create: list[NewInstance] = []
    replace: list[str] = []
    for new in news:
        status = statuses.get(new.instance_id)
        if status is not None and status not in Db.TERMINAL_NAMES:
            refused.append((new, _already_exists(new.instance_id, status)))
            continue
        if status is not None:
            replace.append(new.instance_id)
        statuses[new.instance_id] = "PENDING"
        create.append(new)
    if replace:
        db.delete_instances(conn, replace)
    if not create:
        return refused, lambda: []
    events = [encode_event(n.started_event(now)) for n in create]
    cursor = db.execute(
        conn,
        "WITH new AS (SELECT * FROM unnest(%(ids)s::text[], %(names)s::text[], "
        "  %(eids)s::text[], %(inputs)s::text[], %(parents)s::text[], %(events)s::text[], "
        "  %(visible)s::timestamptz[], %(apps)s::text[]) WITH ORDINALITY "
        "  AS n(instance_id, name, execution_id, input, parent, event, visible_at, app, ord)), "
        "ins AS (INSERT INTO instances (instance_id, name, status, execution_id, input, "
        "  created_at, updated_at, parent_instance_id, app_id) SELECT instance_id, name, "
        "  'PENDING', execution_id, input, %(created)s, %(created)s, parent, app FROM new "
        "  ORDER BY ord "
        "  ON CONFLICT (instance_id) DO NOTHING RETURNING instance_id) "
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
        "SELECT new.instance_id, new.execution_id, new.event, new.visible_at "
        "FROM new JOIN ins ON ins.instance_id = new.instance_id ORDER BY new.ord "
        "RETURNING instance_id",
        {
            "ids": [n.instance_id for n in create],
            "names": [n.name for n in create],
            "eids": [n.execution_id for n in create],
            "inputs": [n.input for n in create],
            "parents": [n.parent.instance_id if n.parent else None for n in create],
            "events": events,
            "visible": [
                max(now, utc(n.scheduled_start)) if n.scheduled_start else now for n in create
            ],
            "created": now,
            "apps": [n.app_id for n in create],
        },
    )

    def conflicts() -> Refusals:
        # An id nobody had when we locked, inserted since by a concurrent transaction: it
        # is brand new, so PENDING.
        inserted = {r[0] for r in cursor.fetchall()}
        lost = [n for n in create if n.instance_id not in inserted]
        for new in lost:
            statuses[new.instance_id] = "PENDING"
        return [(n, _already_exists(n.instance_id, "PENDING")) for n in lost]

    return refused, conflicts


def insert_messages(db: Db, conn: Conn, messages: Sequence[NewMessage]) -> None:
    """Insert messages, in order, for instances that exist (others are dropped)."""
    if not messages:
        return
    db.execute(
        conn,
        "INSERT INTO inbox (instance_id, execution_id, event, visible_at) "
        "SELECT m.iid, m.eid, m.event, COALESCE(m.visible_at, {now}) "
        "FROM unnest(%(iids)s::text[], %(eids)s::text[], %(events)s::text[], "
        "  %(visible)s::timestamptz[]) WITH ORDINALITY AS m(iid, eid, event, visible_at, ord) "
        "JOIN instances i ON i.instance_id = m.iid ORDER BY m.ord FOR KEY SHARE OF i",
        {
            "iids": [m.instance_id for m in messages],
            "eids": [m.execution_id for m in messages],
            "events": [encode_event(m.event) for m in messages],
            "visible": [utc(m.visible_at) if m.visible_at else None for m in messages],
        },
    )
