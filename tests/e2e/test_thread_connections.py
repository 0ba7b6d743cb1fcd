"""A runtime's threads open their store connections before ``start`` returns (SQLite), and a
connection that cannot be opened, or is slow to, never holds ``start`` for long."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import treadle as wf
from treadle.errors import StoreUnavailableError
from treadle.runtime.threads import ThreadStarts
from treadle.store.capabilities import ThreadConnections
from treadle.store.sqlite import SqliteStore


def _threads_connected(store: SqliteStore) -> set[str]:
    """The names of the threads that have a connection of their own to ``store``."""
    db = store._db
    with db._connections_lock:
        return {thread.name for thread, _ in db._connections}


def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """An activity."""
    return x + 1


def flow(ctx: wf.DaprWorkflowContext, x: int):  # type: ignore[no-untyped-def]
    """A workflow of one step."""
    return (yield ctx.call_activity(step, input=x))


def test_the_threads_have_their_connections_once_start_returns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/t.db"
    runtime = wf.WorkflowRuntime(url)
    runtime.register_workflow(flow)
    runtime.register_activity(step)
    store = runtime.store
    assert isinstance(store, SqliteStore) and isinstance(store, ThreadConnections)
    runtime.start()
    try:
        connected = _threads_connected(store)
        # (the dispatcher, the watcher that waits for other processes' commits, and the
        # chores thread of activity deadlines: each opened its own as it started)
        assert {"treadle-dispatcher", "treadle-watcher", "treadle-chores"} <= connected
        client = wf.DaprWorkflowClient(url)
        iid = client.schedule_new_workflow(flow, input=1)
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        assert state is not None and state.serialized_output == "2"
    finally:
        runtime.shutdown()


class _Failing(SqliteStore):
    """A store whose threads cannot open their connection."""

    def connect_thread(self) -> None:
        raise StoreUnavailableError("cannot open: refused for the test")


class _Slow(SqliteStore):
    """A store whose threads' connections take until ``release`` is set."""

    release = threading.Event()

    def connect_thread(self) -> None:
        self.release.wait(10)
        super().connect_thread()


def test_a_failed_connection_lets_the_thread_go_on(tmp_path: Path) -> None:
    store = _Failing(f"sqlite:///{tmp_path}/f.db")
    try:
        starts = ThreadStarts(store)
        ran = threading.Event()
        thread = threading.Thread(target=starts.wrap(ran.set))
        thread.start()
        assert starts.wait(timeout=10)  # (it failed: that is an answer too)
        thread.join(10)
        assert ran.is_set()  # (its work runs, and meets the store's error itself)
    finally:
        store.close()


def test_a_slow_connection_holds_start_no_longer_than_the_bound(tmp_path: Path) -> None:
    store = _Slow(f"sqlite:///{tmp_path}/s.db")
    try:
        starts = ThreadStarts(store)
        ran = threading.Event()
        thread = threading.Thread(target=starts.wrap(ran.set), name="slow-to-connect")
        thread.start()
        began = time.monotonic()
        assert not starts.wait(timeout=0.05)
        assert time.monotonic() - began < 5
        _Slow.release.set()
        thread.join(10)
        assert ran.is_set() and starts.wait(timeout=10)
        assert "slow-to-connect" in _threads_connected(store)
    finally:
        _Slow.release.set()
        store.close()


@pytest.mark.postgres
def test_postgres_has_no_thread_connections(postgres_schema_url: str) -> None:
    from treadle.store.postgres import PostgresStore

    store = PostgresStore(postgres_schema_url, max_size=2)
    try:
        assert not isinstance(store, ThreadConnections)
        starts = ThreadStarts(store)
        ran: list[int] = []

        def target() -> None:
            ran.append(1)

        assert starts.wrap(target) is target  # (threads share the store's pool)
        target()
        assert ran == [1] and starts.wait(timeout=0.0)
    finally:
        store.close()
