"""The time an instance finished (``instances.finished_at``, schema version 10): only the write
that ends an instance sets it, and the index of finished instances (retention's purges) is on
it, not on ``updated_at``, which every turn writes.

On PostgreSQL an update that changes a column of an index (its key or its predicate) cannot be
HOT: it writes new entries in every index of the table. Indexing ``updated_at`` made every turn
of every running instance such an update; these tests check that a running instance's turns
change no indexed column, and that PostgreSQL then makes them HOT updates.
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from treadle.core.history import EventRaised, ExecutionCompleted, OrchestrationStatus
from treadle.store.base import Store
from treadle.store.migrations import migration_sql
from treadle.store.sqlite import SqliteStore

from .helpers import COMPLETED, claim_one, start, started_events, turn
from .rows import column, read_rows

FINISHED = ("COMPLETED", "FAILED", "TERMINATED", "CANCELED")


def _finished_at(store: Store, instance_id: str) -> Any:
    (row,) = [r for r in read_rows(store)["instances"] if r[0] == instance_id]
    return row[column("instances", "finished_at")]


def _run_to_the_end(store: Store, instance_id: str, running_turns: int) -> list[Any]:
    """Start ``instance_id``, commit its first turn and ``running_turns`` more (each on an
    event, keeping the lease), then one that completes it; ``finished_at`` after each."""
    start(store, instance_id)
    item = claim_one(store, limit=1)
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), keep_lease=True)])
    assert outcome.ok
    seen = [_finished_at(store, instance_id)]
    version, length = outcome.version, len(started_events(item))
    record = item.instance
    for k in range(running_turns + 1):
        last = k == running_turns
        events: list[Any] = [EventRaised(name=f"e{k}")]
        if last:
            events.append(ExecutionCompleted(status=COMPLETED, result='"done"'))
        (outcome,) = store.commit_turns(
            "w1",
            [
                turn(
                    item,
                    events,
                    expected_version=version,
                    history_start=length,
                    consumed_messages=[],
                    keep_lease=not last,
                    status=COMPLETED if last else OrchestrationStatus.RUNNING,
                    output='"done"' if last else None,
                )
            ],
        )
        assert outcome.ok, outcome
        version, length = outcome.version, length + len(events)
        seen.append(_finished_at(store, record.instance_id))
    return seen


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store on a file or a schema of its own (read straight from its database here)."""
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStore(f"sqlite:///{tmp_path / 'finished.db'}")
    else:
        from treadle.store.postgres import PostgresStore

        opened = PostgresStore(str(request.getfixturevalue("postgres_schema_url")), max_size=2)
    yield opened
    opened.close()


def test_only_the_turn_that_ends_an_instance_sets_finished_at(store: Store) -> None:
    seen = _run_to_the_end(store, "o-1", running_turns=3)
    assert seen[:-1] == [None] * 4
    record = store.get_instance("o-1")
    assert record is not None and record.status is COMPLETED
    assert seen[-1] == pytest.approx(record.updated_at.timestamp(), abs=1e-3)


# ---- PostgreSQL: HOT updates ---------------------------------------------------------------

pg = pytest.mark.postgres


def _indexed_columns(conn: Any, schema: str) -> set[str]:
    """Every column named by an index of ``instances`` (key, expression or predicate)."""
    defs = conn.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = 'instances'",
        (schema,),
    ).fetchall()
    columns = [
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'instances'",
            (schema,),
        )
    ]
    text = " ".join(d[0].split(" USING ", 1)[1] for d in defs)
    return {c for c in columns if re.search(rf"\b{c}\b", text)}


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[tuple[Store, str, Callable[[], Any]]]:
    import psycopg

    from treadle.store.postgres import PostgresStore

    schema = f"fin_{uuid.uuid4().hex[:12]}"
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={schema}"
    store = PostgresStore(url, max_size=2)

    def admin() -> Any:
        return psycopg.connect(postgres_url, autocommit=True)

    yield store, schema, admin
    store.close()
    with admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pg
@pytest.mark.parametrize("path", [None, "single turn", "simple group", "general group"])
def test_a_running_instance_s_turns_change_no_indexed_column(
    pg_store: tuple[Store, str, Callable[[], Any]], path: str | None
) -> None:
    from treadle.store.postgres import PostgresStore
    from treadle.store.postgres.commit import CommitPath

    store, schema, admin = pg_store
    assert isinstance(store, PostgresStore)
    start(store, "o-1")
    item = claim_one(store, limit=1)
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), keep_lease=True)])
    with admin() as conn:
        indexed = _indexed_columns(conn, schema)
        # (the check sees the columns of keys and of predicates)
        assert {"finished_at", "status", "lease_owner", "waiting"} <= indexed, indexed

        def row() -> dict[str, Any]:
            cur = conn.execute(
                f'SELECT * FROM "{schema}".instances WHERE instance_id = %s', ("o-1",)
            )
            names = [d.name for d in cur.description or ()]
            (values,) = cur.fetchall()
            return dict(zip(names, values, strict=True))

        before = row()
        next_turn = turn(
            item,
            [EventRaised(name="e")],
            expected_version=outcome.version,
            history_start=len(started_events(item)),
            consumed_messages=[],
            keep_lease=True,
        )
        (done,) = store.commit_turns(
            "w1", [next_turn], path=None if path is None else CommitPath(path)
        )
        assert done.ok, done
        after = row()
    changed = {c for c in before if before[c] != after[c]}
    assert "updated_at" in changed and "version" in changed
    assert changed & indexed == set(), f"a running turn changes indexed columns {changed & indexed}"
    assert "updated_at" not in indexed


@pg
def test_postgres_makes_a_running_instance_s_turns_hot_updates(
    pg_store: tuple[Store, str, Callable[[], Any]],
) -> None:
    store, schema, admin = pg_store
    _run_to_the_end(store, "o-1", running_turns=20)

    def counts() -> tuple[int, int]:
        with admin() as conn:
            row = conn.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE schemaname = %s AND relname = 'instances'",
                (schema,),
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    # A connection reports its counts when it closes (else within ten seconds of going idle).
    store.close()
    deadline = time.monotonic() + 30
    while counts()[0] < 22 and time.monotonic() < deadline:
        time.sleep(0.2)
    updates, hot = counts()
    assert updates >= 22, (updates, hot)
    # 20 running turns after the first: each a HOT update (the claim and the last turn are not)
    assert hot >= 20, (updates, hot)


# ---- schema version 10: the rows finished before it -----------------------------------------


def test_sqlite_rows_finished_before_version_10_get_their_finish_time(tmp_path: Path) -> None:
    path = tmp_path / "v9.db"
    conn = sqlite3.connect(path)
    for version in range(1, 10):
        for statement in migration_sql("sqlite", version).split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.executemany("INSERT INTO schema_version VALUES (?)", [(v,) for v in range(1, 10)])
    for iid, status, updated in [("done", "COMPLETED", 50.0), ("runs", "RUNNING", 60.0)]:
        conn.execute(
            "INSERT INTO instances (instance_id, name, status, execution_id, created_at, "
            "updated_at) VALUES (?, 'wf', ?, 'e1', 1, ?)",
            (iid, status, updated),
        )
    conn.commit()
    conn.close()
    SqliteStore(f"sqlite:///{path}").close()  # opening it migrates it
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT instance_id, finished_at FROM instances ORDER BY 1").fetchall()
    index = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'instances_finished'"
    ).fetchone()[0]
    conn.close()
    assert rows == [("done", 50.0), ("runs", None)]
    assert "finished_at" in index and "updated_at" not in index


@pg
def test_postgres_rows_finished_before_version_10_get_their_finish_time(
    postgres_url: str, postgres_schema_url: str
) -> None:
    import psycopg

    from treadle.store.postgres import PostgresStore, parse_postgres_url

    schema = parse_postgres_url(postgres_schema_url)[1]
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        for version in range(1, 10):
            conn.execute(migration_sql("postgres", version).encode())
        conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_version (version) SELECT generate_series(1, 9)")
        conn.execute(
            "INSERT INTO instances (instance_id, name, status, execution_id, created_at, "
            "updated_at) VALUES ('done', 'wf', 'FAILED', 'e1', now(), "
            "'2030-01-02T03:04:05Z'), ('runs', 'wf', 'RUNNING', 'e1', now(), now())"
        )
    PostgresStore(postgres_schema_url).close()  # opening it migrates it
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT instance_id, finished_at = updated_at, finished_at IS NULL "
            f'FROM "{schema}".instances ORDER BY 1'
        ).fetchall()
        found = conn.execute(
            "SELECT indexdef FROM pg_indexes "
            "WHERE schemaname = %s AND indexname = 'instances_finished'",
            (schema,),
        ).fetchone()
    assert found is not None
    (index,) = found
    assert rows == [("done", True, False), ("runs", None, True)]
    assert "finished_at" in index and "updated_at" not in index
