"""PostgresStore beyond the shared contract: database clock, migrations, outages, wake-ups."""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from treadle.core.history import EventRaised, ExecutionCompleted, OrchestrationStatus
from treadle.errors import (
    InvalidInputError,
    SchemaVersionError,
    StoreError,
    StoreUnavailableError,
)
from treadle.store import open_store
from treadle.store.base import InstanceQuery, NewMessage

from .helpers import claim_one, start, started_events, turn

COMPLETED = OrchestrationStatus.COMPLETED

psycopg = pytest.importorskip("psycopg")
from treadle.store.postgres import (  # noqa: E402
    SCHEMA_VERSION,
    PostgresStore,
    migrate,
    parse_postgres_url,
    schema_status,
)

pytestmark = pytest.mark.postgres


def wait_until(predicate: Callable[[], object], timeout: float = 2.0) -> float:
    """Poll ``predicate`` until it is true; return the seconds it took.

    Raises:
        AssertionError: ``timeout`` seconds passed first; the message quotes the predicate.
    """
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            awaited = " ".join(inspect.getsource(predicate).split())
            raise AssertionError(f"timed out after {timeout} s waiting for {awaited}")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def url(postgres_schema_url: str) -> str:
    """A fresh schema, with an application_name that tells its connections apart."""
    return f"{postgres_schema_url}&application_name=treadle-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def stores(url: str) -> Iterator[Callable[..., PostgresStore]]:
    opened: list[PostgresStore] = []

    def make(**kwargs: Any) -> PostgresStore:
        store = PostgresStore(url, **kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


def _admin(postgres_url: str) -> Any:
    return psycopg.connect(postgres_url, autocommit=True)


def test_url_parsing_strips_schema_and_hides_the_password() -> None:
    conninfo, schema, display = parse_postgres_url("postgres://u:secret@db:6543/app?schema=s1")
    assert schema == "s1" and "schema" not in conninfo and conninfo.startswith("postgresql://")
    assert "secret" not in display and "db:6543/app" in display
    assert parse_postgres_url("postgresql://h/db")[1] is None
    with pytest.raises(InvalidInputError):
        parse_postgres_url("mysql://h/db")


def test_open_store_routes_postgres_urls(url: str) -> None:
    store = open_store(url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(store, PostgresStore)
    finally:
        store.close()


def test_leases_run_on_the_database_clock(stores: Callable[..., PostgresStore]) -> None:
    store = stores()
    assert abs(store.now() - datetime.now(timezone.utc)).total_seconds() < 5
    start(store, "o-1")
    item = claim_one(store, "w1", lease_s=0.2)
    assert store.claim_orchestrations("w2", 10, 30) == []
    took = wait_until(lambda: store.claim_orchestrations("w2", 10, 30))
    assert took > 0.1
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item))])
    assert not outcome.ok


def test_schema_status_and_migrate(url: str, stores: Callable[..., PostgresStore]) -> None:
    assert schema_status(url) == (0, SCHEMA_VERSION)
    assert migrate(url) == SCHEMA_VERSION
    assert schema_status(url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    assert migrate(url) == SCHEMA_VERSION
    stores()  # opens on the migrated schema


def test_workers_starting_together_migrate_once(
    url: str, stores: Callable[..., PostgresStore], postgres_url: str
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        barrier.wait()
        try:
            stores(min_size=1, max_size=1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    schema = parse_postgres_url(url)[1]
    with _admin(postgres_url) as conn:
        rows = conn.execute(
            f'SELECT version FROM "{schema}".schema_version ORDER BY version'
        ).fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each applied once


def test_a_newer_schema_is_refused(
    url: str, stores: Callable[..., PostgresStore], postgres_url: str
) -> None:
    stores().close()
    schema = parse_postgres_url(url)[1]
    with _admin(postgres_url) as conn:
        conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES (99)')
    with pytest.raises(SchemaVersionError, match="99"):
        PostgresStore(url)
    with pytest.raises(SchemaVersionError):
        schema_status(url)


def test_an_unreachable_server_is_store_unavailable() -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:9") as info:
        PostgresStore("postgresql://postgres@127.0.0.1:9/test?connect_timeout=2")
    assert isinstance(info.value.__cause__, psycopg.Error)
    assert time.monotonic() - started < 3
    with pytest.raises(StoreUnavailableError):
        schema_status("postgresql://postgres@127.0.0.1:9/test?connect_timeout=2")


@pytest.mark.parametrize(
    ("path", "advice"),
    [
        ("postgres@127.0.0.1:5432/treadle_no_such_db", "create the database"),
        ("treadle_no_such_role@127.0.0.1:5432/test", "fix the user name"),
    ],
)
def test_a_server_that_refuses_the_connection_says_what_to_fix(
    postgres_url: str, path: str, advice: str
) -> None:
    """Not an outage: the server answered, and the message says what to change."""
    with pytest.raises(StoreUnavailableError, match="refused the connection") as info:
        PostgresStore(f"postgresql://{path}")
    assert advice in str(info.value) and "does not exist" in str(info.value)


def test_driver_errors_surface_as_store_errors(stores: Callable[..., PostgresStore]) -> None:
    store = stores()
    start(store, "o-1")
    item = claim_one(store)
    store.commit_turns("w1", [turn(item, started_events(item), keep_lease=True)])
    store.send_message(NewMessage("o-1", EventRaised(name="x")))
    item = claim_one(store)
    with pytest.raises(StoreError) as info:
        store.commit_turns("w1", [turn(item, started_events(item), history_start=0)])
    assert not isinstance(info.value, psycopg.Error)
    assert isinstance(info.value.__cause__, psycopg.IntegrityError)


def _backends(postgres_url: str, url: str, what: str = "pid") -> list[object]:
    """``what`` for every backend of the store(s) at ``url`` (told apart by application_name)."""
    app = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))["application_name"]
    with _admin(postgres_url) as conn:
        rows = conn.execute(
            f"SELECT {what} FROM pg_stat_activity WHERE application_name = %s", (app,)
        ).fetchall()
    return [r[0] for r in rows]


def _is_listening(postgres_url: str, url: str) -> bool:
    return "LISTEN treadle_work" in _backends(postgres_url, url, "query")


def test_killed_connections_are_replaced(
    url: str, stores: Callable[..., PostgresStore], postgres_url: str
) -> None:
    store = stores(min_size=2, max_size=2)
    other = stores()
    start(store, "o-1")
    token: object = store.change_token()  # starts the listener
    killed = _backends(postgres_url, url, "pid")
    assert len(killed) >= 3  # two pools and a listener
    _backends(postgres_url, url, "pg_terminate_backend(pid)")
    wait_until(lambda: not set(killed) & set(_backends(postgres_url, url)))
    # Dead pooled connections are noticed before use, even by a write that is not safe to
    # retry (it would be unknown whether a send whose COMMIT got no answer was delivered).
    for _ in range(3):
        store.send_message(NewMessage("o-1", EventRaised(name="after")))
    assert store.get_instance("o-1") is not None
    start(store, "o-2")
    # The listener reconnects on its own; then another store's write wakes this one.
    wait_until(lambda: _is_listening(postgres_url, url), timeout=5)
    token = store.wait_for_work(0, token)

    def write() -> None:
        time.sleep(0.05)  # let this thread block in wait_for_work first
        other.send_message(NewMessage("o-1", EventRaised(name="x")))

    writer = threading.Thread(target=write)
    writer.start()
    started = time.monotonic()
    assert store.wait_for_work(5.0, token) != token
    writer.join()
    assert time.monotonic() - started < 1.0
    assert len(store.claim_orchestrations("w1", 10, 30)) == 2


def test_an_instance_read_alone_has_the_exact_times_of_a_listing(
    stores: Callable[..., PostgresStore],
) -> None:
    """get_instance reads times as microseconds (text), listings as timestamps: the same
    instants, to the microsecond, in UTC."""
    store = stores()
    start(store, "o-1")
    run_first = claim_one(store)
    store.commit_turns("w1", [turn(run_first, started_events(run_first))])
    alone = store.get_instance("o-1")
    (listed,) = store.list_instances(InstanceQuery()).instances
    assert alone is not None
    assert (alone.created_at, alone.updated_at) == (listed.created_at, listed.updated_at)
    assert alone.created_at.utcoffset() == alone.updated_at.utcoffset() == timedelta(0)
    assert alone.updated_at > alone.created_at
    assert alone == listed
    assert store.get_instance("missing") is None


def test_work_callbacks_run_on_notifications_until_cancelled(
    stores: Callable[..., PostgresStore], url: str, postgres_url: str
) -> None:
    store = stores()
    other = stores()
    calls: list[tuple[bool, bool]] = []
    cancel = store.on_work(
        lambda orchestrations, activities: calls.append((orchestrations, activities))
    )
    wait_until(lambda: _is_listening(postgres_url, url))  # (connecting calls it: True, True)
    start(other, "o-1")  # a start gives instances to claim, no activities
    wait_until(lambda: (True, False) in calls)
    cancel()
    calls.clear()
    start(other, "o-2")
    time.sleep(0.2)
    assert calls == []


def test_notifications_of_other_schemas_do_not_wake(
    url: str, stores: Callable[..., PostgresStore], postgres_url: str
) -> None:
    store = stores()
    stranger_url = with_schema(postgres_url, f"t_{uuid.uuid4().hex}")
    stranger = PostgresStore(stranger_url)
    try:
        token = store.change_token()
        start(stranger, "x")
        started = time.monotonic()
        assert store.wait_for_work(0.3, token) == token
        assert time.monotonic() - started >= 0.29
    finally:
        stranger.close()
        schema = parse_postgres_url(stranger_url)[1]
        with _admin(postgres_url) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_lease_statements_leave_commits_synchronous(stores: Callable[..., PostgresStore]) -> None:
    """Claims, renewals and releases commit asynchronously, for that statement only: the
    pooled connection they ran on still waits for the WAL flush on every other commit."""
    store = stores(min_size=1, max_size=1)
    start(store, "o-1")
    item = claim_one(store)
    store.renew_leases("w1", [item.instance.instance_id], [], 30)
    store.release_leases("w1")
    assert store.claim_activities("w1", 10, 30) == []
    setting = store._db.run(lambda db, conn: conn.execute("SHOW synchronous_commit").fetchone())
    assert setting == ("on",)


def test_many_workers_claim_each_instance_once(stores: Callable[..., PostgresStore]) -> None:
    setup = stores()
    for n in range(40):
        start(setup, f"o-{n}")
    workers = [stores(max_size=2) for _ in range(4)]
    claimed: list[str] = []
    lock = threading.Lock()

    def work(index: int) -> None:
        mine: list[str] = []  # a worker may re-claim its own leases: leave those out
        while items := workers[index].claim_orchestrations(f"w{index}", 3, 30, exclude=mine):
            mine += [i.instance.instance_id for i in items]
        with lock:
            claimed.extend(mine)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(f"o-{n}" for n in range(40))


def test_closed_store_refuses_calls(stores: Callable[..., PostgresStore]) -> None:
    store = stores()
    store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        store.get_instance("x")
    with pytest.raises(StoreUnavailableError):
        store.wait_for_work(0.1)
    store.close()


def test_instances_messaging_each_other_commit_concurrently_without_deadlock(
    stores: Callable[..., PostgresStore],
) -> None:
    """Commits lock their instances FOR NO KEY UPDATE, messages lock targets FOR KEY SHARE."""
    a_store, b_store = stores(), stores()
    start(a_store, "a")
    start(a_store, "b")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def ping(store: PostgresStore, me: str, peer: str) -> None:
        try:
            for _ in range(15):
                store.send_message(NewMessage(me, EventRaised(name="tick")))
                items = store.claim_orchestrations(me, 10, 30, exclude=[peer])
                (item,) = [i for i in items if i.instance.instance_id == me]
                barrier.wait(timeout=5)
                send = NewMessage(peer, EventRaised(name="ping"))
                (outcome,) = store.commit_turns(me, [turn(item, new_messages=[send])])
                assert outcome.ok
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    started = time.monotonic()
    threads = [
        threading.Thread(target=ping, args=(a_store, "a", "b")),
        threading.Thread(target=ping, args=(b_store, "b", "a")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert time.monotonic() - started < 1.0  # a deadlock costs deadlock_timeout (1 s) each


def test_a_version_1_schema_is_upgraded_in_place(
    postgres_url: str, postgres_schema_url: str
) -> None:
    # A schema written by version 1, with a task queued: opening it migrates it, and the
    # queued work is still there.
    from treadle.store.migrations import migration_sql
    from treadle.store.postgres import PostgresStore

    schema = parse_postgres_url(postgres_schema_url)[1]
    with _admin(postgres_url) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(migration_sql("postgres", 1).encode())
        conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        conn.execute(
            "INSERT INTO instances (instance_id, name, status, execution_id, created_at, "
            "updated_at, history_len) VALUES ('old-1', 'wf', 'RUNNING', 'e1', now(), now(), 2)"
        )
        conn.execute(
            "INSERT INTO activity_tasks (instance_id, execution_id, task_id, name, input, "
            "task_execution_id, visible_at) VALUES ('old-1', 'e1', 0, 'step', '1', 'e1:0', now())"
        )
    store = PostgresStore(postgres_schema_url)
    try:
        (task,) = store.claim_activities("w1", 10, 30)
        assert (task.instance_id, task.name) == ("old-1", "step")
    finally:
        store.close()
    with _admin(postgres_url) as conn:
        rows = conn.execute(
            f'SELECT version FROM "{schema}".schema_version ORDER BY version'
        ).fetchall()
    assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_status_changes_reach_clients_of_this_process_at_once(
    url: str, stores: Callable[..., PostgresStore], postgres_url: str
) -> None:
    """A commit that ends an instance wakes this process's clients on the same schema when it
    returns (not a notification round trip later), and wakes no worker twice for it."""
    worker, client = stores(), stores()
    stranger_url = with_schema(postgres_url, f"t_{uuid.uuid4().hex}")
    stranger = PostgresStore(stranger_url)
    try:
        token, work = client.change_token(), client.change_token(work_only=True)
        stranger_token = stranger.change_token()
        worker._listener.echo_status()  # what a commit that changed a status does
        assert client.change_token() != token  # at once: no notification was even sent
        assert client.change_token(work_only=True) == work
        assert stranger.wait_for_work(0.2, stranger_token) == stranger_token
        start(worker, "e-1")
        item = claim_one(worker)
        token = client.change_token()
        events = [*started_events(item), ExecutionCompleted(status=COMPLETED, result="1")]
        (outcome,) = worker.commit_turns(
            "w1", [turn(item, events, status=COMPLETED, output="1", cancel_activities=True)]
        )
        assert outcome.ok
        assert client.change_token() != token
    finally:
        stranger.close()
        schema = parse_postgres_url(stranger_url)[1]
        with _admin(postgres_url) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _ending_turn(item: Any, **kwargs: Any) -> Any:
    events = [*started_events(item), ExecutionCompleted(status=COMPLETED, result='"done"')]
    return turn(item, events, status=COMPLETED, output='"done"', custom_status='"last"', **kwargs)


def test_a_commit_that_ends_an_instance_hands_its_row_to_this_process_s_watchers(
    stores: Callable[..., PostgresStore],
) -> None:
    """The row handed over is the row a read gives, to the microsecond; only watched
    instances are kept, and only while watched."""
    worker, client = stores(), stores()
    start(worker, "e-1")
    start(worker, "e-2")
    with client.watching("e-1") as handed:
        assert handed() == (None, False)
        items = {i.instance.instance_id: i for i in worker.claim_orchestrations("w1", 10, 30)}
        token = client.change_token()
        (outcome,) = worker.commit_turns("w1", [_ending_turn(items["e-1"])])
        assert outcome.ok
        assert client.change_token() != token  # woken as the commit returned
        record, coming = handed()
        assert record is not None and not coming
        assert record == client.get_instance("e-1")
        assert (record.status, record.output, record.custom_status) == (
            COMPLETED,
            '"done"',
            '"last"',
        )
        assert record.version == outcome.version
        (other,) = worker.commit_turns("w1", [_ending_turn(items["e-2"])])
        assert other.ok
        assert client._listener.watched("e-2") == (None, False)  # nobody watched it
    assert client._listener.watched("e-1") == (None, False)  # forgotten once unwatched


def test_a_refused_ending_hands_nothing_over_and_still_wakes_the_watcher(
    stores: Callable[..., PostgresStore],
) -> None:
    worker, client = stores(), stores()
    start(worker, "e-1")
    item = claim_one(worker)
    with client.watching("e-1") as handed:
        token = client.change_token()
        (outcome,) = worker.commit_turns("w-other", [_ending_turn(item)])  # not its lease
        assert not outcome.ok
        assert handed() == (None, False)
        assert client.change_token() != token  # so it reads the instance for itself


def test_a_watcher_knows_an_ending_commit_is_under_way(
    stores: Callable[..., PostgresStore], url: str
) -> None:
    """While a commit that ends the instance waits (here for a row lock), a watcher woken
    meanwhile learns that the row is coming rather than read it; it is handed over after."""
    worker, client = stores(), stores()
    start(worker, "e-1")
    item = claim_one(worker)
    outcomes: list[Any] = []
    with psycopg.connect(url.split("?")[0], autocommit=False) as blocker:
        schema = parse_postgres_url(url)[1]
        blocker.execute(
            f'SELECT 1 FROM "{schema}".instances WHERE instance_id = %s FOR UPDATE', ("e-1",)
        )
        with client.watching("e-1") as handed:
            committer = threading.Thread(
                target=lambda: outcomes.extend(worker.commit_turns("w1", [_ending_turn(item)]))
            )
            committer.start()
            wait_until(lambda: handed()[1])
            assert handed()[0] is None
            blocker.rollback()  # let the commit through
            committer.join(5)
            record, coming = handed()
    assert [o.ok for o in outcomes] == [True]
    assert record is not None and record.status is COMPLETED and not coming


def test_url_parsing_always_asks_for_utf8_on_the_wire() -> None:
    conninfo, _, _ = parse_postgres_url("postgresql://h/db?client_encoding=LATIN1")
    assert conninfo.count("client_encoding") == 1 and "client_encoding=UTF8" in conninfo


def test_a_database_in_another_encoding_keeps_text_intact_or_refuses_it(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Statements sent through libpq encode text as UTF-8: the connection says so, and the
    server converts to the database's encoding (LATIN1 here), so what is read is what was
    written, by either path; a character LATIN1 cannot hold is refused, not mangled."""
    name = f"treadle_latin1_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_url) as conn:
        conn.execute(
            f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
    try:
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}?schema=t"
        with caplog.at_level("WARNING", logger="treadle.store.postgres.schema"):
            store = PostgresStore(url)
        try:
            assert "stores text as LATIN1" in caplog.text
            start(store, "o-é", input='"café"')
            item = claim_one(store)
            assert (item.instance.instance_id, item.instance.input) == ("o-é", '"café"')
            events = [*started_events(item), ExecutionCompleted(status=COMPLETED, result='"çà"')]
            (outcome,) = store.commit_turns(
                "w1", [turn(item, events, status=COMPLETED, output='"çà"')]
            )
            assert outcome.ok
            record = store.get_instance("o-é")
            assert record is not None and (record.input, record.output) == ('"café"', '"çà"')
            history = store.get_history("o-é")  # (read through psycopg)
            assert history[-1] == ExecutionCompleted(
                status=COMPLETED, result='"çà"', timestamp=history[-1].timestamp
            )
            with pytest.raises(StoreError, match="no equivalent in encoding"):
                start(store, "o-euro", input='"€"')
        finally:
            store.close()
    finally:
        with _admin(postgres_url) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
