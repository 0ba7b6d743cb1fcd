"""Closing a SqliteStore while other threads use it: they get StoreUnavailableError, and
the process does not crash (closing a connection under a running statement would)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

import treadle as wf
from treadle.errors import StoreError, StoreUnavailableError
from treadle.store.sqlite import SqliteStore


def _use_until_closed(store: SqliteStore, stop: threading.Event, seen: list[Exception]) -> None:
    while not stop.is_set():
        try:
            store.claim_activities("w", 10, 30)
            store.claim_orchestrations("w", 10, 30)
        except StoreError as exc:
            seen.append(exc)
            return


def test_closing_a_store_that_other_threads_are_using(tmp_path: Path) -> None:
    for round_ in range(30):
        store = SqliteStore(f"sqlite:///{tmp_path / f'{round_}.db'}")
        stop = threading.Event()
        seen: list[Exception] = []
        users = [
            threading.Thread(target=_use_until_closed, args=(store, stop, seen)) for _ in range(3)
        ]
        for user in users:
            user.start()
        time.sleep(0.02)
        store.close()
        time.sleep(0.005)
        stop.set()
        for user in users:
            user.join(5)
        assert all(isinstance(exc, StoreUnavailableError) for exc in seen)
        assert all("was closed" in str(exc) for exc in seen)


def test_a_client_leaves_open_a_store_it_was_given(tmp_path: Path) -> None:
    """A store object may be shared (with a runtime, say): closing the client must not close
    it under the runtime. A store the client opened from a URL is closed with it."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        with wf.WorkflowClient(store):
            pass
        assert store.get_instance("nobody") is None  # still open
    finally:
        store.close()
    with wf.WorkflowClient(f"sqlite:///{tmp_path / 'own.db'}") as client:
        own = client.store
    try:
        own.get_instance("nobody")
    except StoreUnavailableError as exc:
        assert "was closed" in str(exc)
    else:
        raise AssertionError("the client's own store stayed open")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite3.OperationalError("database is locked"), StoreUnavailableError),
        (sqlite3.OperationalError("database table is locked"), StoreUnavailableError),
        (sqlite3.OperationalError("no such table: x"), StoreError),
        (sqlite3.IntegrityError("UNIQUE constraint failed"), StoreError),
    ],
)
def test_a_locked_database_is_an_outage_not_a_refusal(
    tmp_path: Path, error: sqlite3.Error, expected: type[StoreError]
) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path}/locked.db")
    try:
        with pytest.raises(expected) as raised, store._db.errors():
            raise error
        assert type(raised.value) is expected
    finally:
        store.close()
