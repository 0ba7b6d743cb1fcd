"""One statement straight over libpq: the hot path of PostgresStore.

psycopg's ``Connection.execute`` builds a cursor, adapters and a query object on every call:
about 80 µs of CPU a statement here, where libpq's own ``PQexecPrepared`` takes under 40 µs
(and releases the GIL while it waits, as psycopg does). The statements that run once or
more per workflow step or start (turn commits, claims, starts, reading one instance) go this
way instead: SQL written with ``%(name)s`` placeholders is turned into ``$n`` once, prepared
on each connection the first time that connection runs it, and its parameters are sent as
text with the types psycopg would give them (``str`` as unknown, so the server infers the
type from the statement, as it does for psycopg; lists as array literals, which the
statement casts). Rows come back as text, or typed by psycopg's own loaders
(:func:`load_rows`).

Errors are psycopg's own (``psycopg.errors`` classes from the result, OperationalError for a
broken connection), so :meth:`.Connections.attempt` treats them as any other.
"""

from __future__ import annotations

import functools
import itertools
import re
import select
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer

__all__ = ["array_literal", "encode_param", "execute_raw", "load_rows", "numbered"]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")
_INT8, _FLOAT8, _BOOL, _TIMESTAMPTZ, _UNKNOWN = 20, 701, 16, 1184, 0
_INVALID_STATEMENT_NAME = "26000"
_CANCEL_WAIT_S, _CANCEL_WAITS = 1.0, 5  # waits for the end of a cancelled statement

# Process-wide caches, not registries: a statement's name is a function of its text and
# parameter types, and what a connection has prepared dies with the connection (weak keys).
# Two stores share nothing through them: a prepared statement lives in one session.
_names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
_counter = itertools.count(1)
_prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


@functools.lru_cache(maxsize=256)
def numbered(text: str) -> tuple[bytes, tuple[str, ...]]:
    """``text`` with its ``%(name)s`` placeholders as ``$1``, ``$2``... (``%%`` as ``%``),
    and the names in the order of their numbers."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "%"
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PLACEHOLDER.sub(number, text).encode(), tuple(names)


def encode_param(value: Any) -> tuple[bytes | None, int]:
    """A parameter as libpq's text format takes it, with its type OID (0: let the server
    infer it, as psycopg does for ``str``).

    Raises:
        TypeError: a value of a type no raw statement needs (use psycopg's path for it).
    """
    if value is None:
        return None, _UNKNOWN
    cls = type(value)  # (the exact types first, without isinstance: a turn has many)
    if cls is str:
        return value.encode(), _UNKNOWN
    if cls is int:
        return str(value).encode(), _INT8
    if cls is float:
        return repr(value).encode(), _FLOAT8
    if isinstance(value, str):
        return value.encode(), _UNKNOWN
    if isinstance(value, bool):
        return (b"t" if value else b"f"), _BOOL
    if isinstance(value, int):
        return str(value).encode(), _INT8
    if isinstance(value, float):
        return repr(value).encode(), _FLOAT8
    if isinstance(value, datetime):
        return value.isoformat().encode(), _TIMESTAMPTZ
    if isinstance(value, list | tuple):  # an array literal: the statement casts it
        return array_literal(value).encode(), _UNKNOWN
    raise TypeError(f"a raw statement takes no {type(value).__name__} parameter")


def array_literal(items: Sequence[str | int]) -> str:
    """A PostgreSQL array literal of texts or integers (texts quoted: any text is safe).

    Raises:
        TypeError: an item is neither.
    """
    parts: list[str] = []
    for item in items:
        if isinstance(item, str):
            parts.append('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"')
        elif isinstance(item, int) and not isinstance(item, bool):
            parts.append(str(item))
        else:
            raise TypeError(f"an array parameter takes no {type(item).__name__} item")
    return "{" + ",".join(parts) + "}"


def load_rows(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> list[tuple[Any, ...]]:
    """The rows of a result as psycopg would return them (its loaders, this connection's
    types and time zone)."""
    transformer = Transformer(conn)
    transformer.set_pgresult(result)
    return transformer.load_rows(0, result.ntuples, tuple)


def _statement_name(sql: bytes, oids: tuple[int, ...]) -> bytes:
    name = _names.get((sql, oids))
    if name is None:
        with _lock:
            name = _names.setdefault((sql, oids), b"treadle_raw_%d" % next(_counter))
    return name


def _check(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> None:
    if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        return
    if conn.pgconn.status == pq.ConnStatus.BAD:
        message = result.error_message.decode(errors="replace").strip()
        raise psycopg.OperationalError(message or "the connection to the server was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def execute_raw(
    conn: psycopg.Connection[Any], text: str, params: Mapping[str, Any]
) -> pq.abc.PGresult:
    """Run one statement on ``conn`` (in autocommit mode, outside any transaction) through
    libpq; return its result, whose values are text (``get_value(row, column)``).

    Raises:
        psycopg.Error: as psycopg raises it for the same statement.
    """
    sql, names = numbered(text)
    values: list[bytes | None] = []
    oids: list[int] = []
    for key in names:
        value, oid = encode_param(params[key])
        values.append(value)
        oids.append(oid)
    types = tuple(oids)
    name = _statement_name(sql, types)
    done = _prepared.get(conn)
    if done is None:
        done = _prepared.setdefault(conn, set())
    pgconn = conn.pgconn
    # (libpq takes None for NULL, as psycopg's own calls pass it; its stub says bytes)
    sending = cast("list[bytes]", values)
    for attempt in (1, 2):
        if name not in done:
            _check(conn, _exchange(conn, lambda: pgconn.send_prepare(name, sql, types)))
            done.add(name)
        result = _exchange(conn, lambda: pgconn.send_query_prepared(name, sending))
        if (
            attempt == 1
            and result.status == pq.ExecStatus.FATAL_ERROR
            and result.error_field(pq.DiagnosticField.SQLSTATE) == _INVALID_STATEMENT_NAME.encode()
        ):
            done.discard(name)  # the session forgot it (DISCARD ALL): prepare it again
            continue
        _check(conn, result)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _exchange(conn: psycopg.Connection[Any], send: Callable[[], None]) -> pq.abc.PGresult:
    """``send`` one request through libpq, then wait for its result in poll(2) (where
    Ctrl-C and other signals get through, as with psycopg: libpq's blocking calls would hold
    them until the server answered); an interrupted statement is cancelled on the server
    and the exception raised again."""
    pgconn = conn.pgconn
    send()
    wait = _reader(pgconn.socket)
    sent = False
    try:
        if pgconn.flush():  # (a nonblocking connection: a large statement goes in parts)
            _send_rest(pgconn)
        sent = True
        while pgconn.is_busy():
            wait(None)
            pgconn.consume_input()
    except psycopg.OperationalError:
        conn.close()  # the connection is gone (nothing to cancel): the pool replaces it
        raise
    except BaseException:  # an interrupt: the server is there, tell it to stop
        if sent:
            _cancel(conn)
        else:  # half a statement went: the server drops it with the connection, unrun
            conn.close()
        raise
    result = None
    while (latest := pgconn.get_result()) is not None:
        result = latest
    if result is None:  # pragma: no cover (libpq always gives one for a query)
        raise psycopg.OperationalError("the server gave no result for a statement")
    return result


def _send_rest(pgconn: pq.abc.PGconn) -> None:
    """Send what libpq still holds of a statement, reading what the server sends meanwhile
    (libpq's rule for nonblocking connections, as psycopg's connections are: the server may
    answer before it has read everything, and would wait for us to read)."""
    fd = pgconn.socket
    poller = select.poll() if hasattr(select, "poll") else None
    if poller is not None:
        poller.register(fd, select.POLLIN | select.POLLOUT)
    while True:
        if poller is not None:
            readable = any(event & select.POLLIN for _, event in poller.poll())
        else:  # pragma: no cover (no poll(2): Windows)
            readable = bool(select.select([fd], [fd], [])[0])
        if readable:
            pgconn.consume_input()
        if not pgconn.flush():
            return


def _cancel(conn: psycopg.Connection[Any]) -> None:
    """Cancel the statement under way on ``conn`` and read its end; close the connection if
    that fails (the pool then replaces it)."""
    pgconn = conn.pgconn
    try:
        pgconn.get_cancel().cancel()
        wait = _reader(pgconn.socket)
        for _ in range(_CANCEL_WAITS):
            if not pgconn.is_busy():
                break
            wait(_CANCEL_WAIT_S)
            pgconn.consume_input()
        if pgconn.is_busy():
            raise psycopg.OperationalError("a cancelled statement did not end")
        while pgconn.get_result() is not None:
            pass
    except BaseException:
        conn.close()


def _reader(fd: int) -> Callable[[float | None], object]:
    """A function that waits (at most so many seconds; None: no limit) until ``fd`` can be
    read: poll(2) where there is one (select(2) cannot watch descriptors past 1023)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return lambda timeout: poller.poll(None if timeout is None else timeout * 1000)
    return lambda timeout: select.select([fd], [], [], timeout)
