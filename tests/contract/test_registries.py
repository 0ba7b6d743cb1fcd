"""The stores' process-wide registries live exactly as long as their documented lifetime:
SQLite's state shared per database (treadle.store.sqlite.shared) and PostgreSQL's listeners
per schema (treadle.store.postgres.local_listeners)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from treadle.errors import StoreUnavailableError
from treadle.store.sqlite import SqliteStore
from treadle.store.sqlite import shared as sqlite_shared


def test_sqlite_stores_on_one_database_share_its_entry_until_the_last_closes(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "one.db")
    other = str(tmp_path / "other.db")
    first = SqliteStore(f"sqlite:///{path}")
    second = SqliteStore(f"sqlite:///{path}")
    elsewhere = SqliteStore(f"sqlite:///{other}")
    assert {path, other} <= set(sqlite_shared.shared_databases())
    first.close()
    first.close()  # (twice: released once)
    assert path in sqlite_shared.shared_databases()  # the second store still uses it
    second.close()
    assert path not in sqlite_shared.shared_databases()
    assert other in sqlite_shared.shared_databases()
    elsewhere.close()
    assert other not in sqlite_shared.shared_databases()


def test_an_in_memory_database_entry_goes_with_its_last_store() -> None:
    url = f"memory://{uuid.uuid4().hex}"
    before = set(sqlite_shared.shared_databases())
    store = SqliteStore(url)
    (key,) = set(sqlite_shared.shared_databases()) - before
    store.close()
    assert key not in sqlite_shared.shared_databases()


def test_the_wake_socket_goes_with_the_last_store_on_the_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wake.db'}"
    first, second = SqliteStore(url), SqliteStore(url)
    first.wait_for_work(0.0)  # a waiter listens to the other processes' wake-ups
    here = sqlite_shared.acquire(str(tmp_path / "wake.db"), is_file=True)
    sqlite_shared.release(here)
    assert here.wake is not None and here.wake.listening
    mine = f"{os.getpid()}-"
    assert any(name.startswith(mine) for name in os.listdir(here.wake.directory))
    first.close()
    assert here.wake.listening  # the second store still uses it
    second.close()
    assert not here.wake.listening
    assert not any(name.startswith(mine) for name in os.listdir(here.wake.directory))


def test_a_closed_sqlite_store_does_not_listen_again(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'closed.db'}")
    store.wait_for_work(0.0)
    store.close()
    with pytest.raises(StoreUnavailableError, match="closed"):
        store.wait_for_work(0.0)
    assert str(tmp_path / "closed.db") not in sqlite_shared.shared_databases()


@pytest.mark.postgres
def test_postgres_listeners_are_registered_while_their_store_is_open(
    postgres_schema_url: str,
) -> None:
    from treadle.store.postgres import PostgresStore, local_listeners, parse_postgres_url

    conninfo, schema, _ = parse_postgres_url(postgres_schema_url)
    assert schema is not None
    key = (conninfo, schema.encode())
    assert local_listeners.listeners_of(key) == ()
    first = PostgresStore(postgres_schema_url, max_size=1)
    second = PostgresStore(postgres_schema_url, max_size=1)
    try:
        assert len(local_listeners.listeners_of(key)) == 2
        first.close()
        assert len(local_listeners.listeners_of(key)) == 1
    finally:
        first.close()
        second.close()
    assert local_listeners.listeners_of(key) == ()
