"""Statements run through libpq directly (treadle.store.postgres.libpq), on a real server."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

psycopg = pytest.importorskip("psycopg")
from treadle.store.postgres.libpq import (  # noqa: E402
    encode_param,
    execute_raw,
    load_rows,
    numbered,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def conn(postgres_url: str) -> Iterator[Any]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        yield connection


def test_placeholders_are_numbered_in_order_of_first_use() -> None:
    sql, names = numbered("SELECT %(b)s, %(a)s, %(b)s || '%%'")
    assert sql == b"SELECT $1, $2, $1 || '%'"
    assert names == ("b", "a")


def test_parameters_of_every_kind_arrive_as_psycopg_sends_them(conn: Any) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)
    result = execute_raw(
        conn,
        "SELECT %(s)s::text, %(i)s + 1, %(f)s * 2, %(b)s, %(t)s = '2026-01-02T03:04:05.678Z', "
        "%(n)s::text IS NULL, %(j)s::jsonb ->> 'k'",
        {"s": "é'\"", "i": 2**40, "f": 0.25, "b": True, "t": when, "n": None, "j": '{"k": "v"}'},
    )
    row = [result.get_value(0, c) for c in range(result.nfields)]
    assert row == ["é'\"".encode(), str(2**40 + 1).encode(), b"0.5", b"t", b"t", b"t", b"v"]


def test_a_statement_larger_than_the_socket_takes_at_once_is_sent_whole(conn: Any) -> None:
    """The connection is nonblocking: a large statement leaves libpq with data to send after
    the first write, which must be sent (reading the server meanwhile) before waiting."""
    text = "é" * 12_000_000  # 24 MB of UTF-8
    result = execute_raw(conn, "SELECT length(%(t)s), md5(%(t)s)", {"t": text})
    assert result.get_value(0, 0) == b"12000000"
    assert result.get_value(0, 1) == hashlib.md5(text.encode()).hexdigest().encode()
    assert execute_raw(conn, "SELECT %(x)s::int + 1", {"x": 1}).get_value(0, 0) == b"2"


def test_unsupported_parameters_are_refused_before_sending() -> None:
    with pytest.raises(TypeError, match="dict"):
        encode_param({"a": 1})


def test_a_session_that_forgot_its_statements_prepares_them_again(conn: Any) -> None:
    assert execute_raw(conn, "SELECT %(x)s::int * 3", {"x": 2}).get_value(0, 0) == b"6"
    conn.execute("DEALLOCATE ALL")
    assert execute_raw(conn, "SELECT %(x)s::int * 3", {"x": 5}).get_value(0, 0) == b"15"


def test_server_errors_are_psycopg_errors_of_their_class(conn: Any) -> None:
    conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
    execute_raw(conn, "INSERT INTO t VALUES (%(id)s)", {"id": 1})
    with pytest.raises(psycopg.errors.UniqueViolation):
        execute_raw(conn, "INSERT INTO t VALUES (%(id)s)", {"id": 1})
    # the connection is still usable, outside any transaction
    assert execute_raw(conn, "SELECT count(*) FROM t", {}).get_value(0, 0) == b"1"


def test_a_connection_the_server_closed_raises_operational_error(
    conn: Any, postgres_url: str
) -> None:
    pid = conn.info.backend_pid
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.OperationalError):
        execute_raw(conn, "SELECT %(x)s::int", {"x": 1})
    assert conn.broken


def test_array_parameters_and_typed_rows(conn: Any) -> None:
    texts = ['a"b', "c\\d", "{e,f}", "", "NULL", "é"]
    result = execute_raw(
        conn,
        "SELECT %(t)s::text[], %(i)s::bigint[], cardinality(%(none)s::text[]), now()",
        {"t": texts, "i": [1, -2, 2**40], "none": []},
    )
    ((got_texts, got_ints, empty, when),) = load_rows(conn, result)
    assert got_texts == texts
    assert got_ints == [1, -2, 2**40]
    assert empty == 0
    assert isinstance(when, datetime) and when.utcoffset() is not None
    with pytest.raises(TypeError, match="float"):
        encode_param([1.5])


class _Interrupted(Exception):
    pass


@contextlib.contextmanager
def _interrupted_after(seconds: float) -> Iterator[None]:
    """Expect the block to be interrupted by a signal (as Ctrl-C would) after ``seconds``,
    and to give up within 2 s of its start."""

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        started = time.monotonic()
        with pytest.raises(_Interrupted):
            yield
        assert time.monotonic() - started < 2.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_statement_interrupted_while_it_is_sent_closes_its_connection(conn: Any) -> None:
    """Half a statement on the wire leaves a session that cannot go on: interrupted then
    (here the server is paused, so a large statement cannot all go), the connection is
    closed at once rather than cancelled and waited for."""
    statement = "SELECT length(%(t)s)"
    assert execute_raw(conn, statement, {"t": "x"}).get_value(0, 0) == b"1"  # (prepared)
    pid = conn.info.backend_pid
    try:
        os.kill(pid, signal.SIGSTOP)
    except PermissionError:
        pytest.skip("cannot pause the server's process from this user")
    try:
        with _interrupted_after(0.3):
            execute_raw(conn, statement, {"t": "x" * 20_000_000})
    finally:
        os.kill(pid, signal.SIGCONT)
    assert conn.closed


def test_preparing_a_statement_can_be_interrupted_too(conn: Any, postgres_url: str) -> None:
    """Planning a statement waits for the locks on its tables (here, a migration holds one):
    that wait is interruptible like any statement's, and cancelled on the server."""
    table = f"treadle_raw_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE TABLE {table} (id int)")
    try:
        with psycopg.connect(postgres_url) as migration:
            migration.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            with _interrupted_after(0.2):
                execute_raw(conn, f"SELECT count(*) FROM {table} WHERE id = %(x)s", {"x": 1})
            migration.rollback()
        assert not conn.closed
        result = execute_raw(conn, f"SELECT count(*) FROM {table} WHERE id = %(x)s", {"x": 1})
        assert result.get_value(0, 0) == b"0"
    finally:
        conn.execute(f"DROP TABLE {table}")


def test_an_interrupted_statement_is_cancelled_and_the_connection_stays_usable(
    conn: Any,
) -> None:
    """A signal (Ctrl-C, say) gets through while a statement waits on the server, which is
    told to cancel it; the connection then runs the next statement at once."""
    with _interrupted_after(0.2):
        execute_raw(conn, "SELECT pg_sleep(%(s)s)", {"s": 10.0})
    assert not conn.closed
    started = time.monotonic()
    assert execute_raw(conn, "SELECT %(x)s::int", {"x": 7}).get_value(0, 0) == b"7"
    assert time.monotonic() - started < 1.0
    (active,) = load_rows(
        conn,
        execute_raw(
            conn,
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %(q)s AND state = 'active'",
            {"q": "SELECT pg_sleep%"},
        ),
    )
    assert active == (0,)
