"""Two runtimes on different stores in one process never see each other's work.

The stores keep process-wide registries (treadle.store.local_starts by store URL,
treadle.store.sqlite.shared by database file, treadle.store.postgres.local_listeners by
schema). Two SQLite files, two PostgreSQL schemas, or one of each, in one process: workflows
with the same instance ids, started on each, run and complete on their own runtime only, and
the work on one store neither wakes the other's waiters nor hands rows to its clients.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.store import InstanceWatcher, Store, open_store
from treadle.store.base import WorkToken
from treadle.store.sqlite import SqliteStore

from .helpers import finish

PAIRS = [
    pytest.param(("sqlite", "sqlite"), id="two-sqlite-files"),
    pytest.param(("postgres", "postgres"), id="two-postgres-schemas", marks=pytest.mark.postgres),
    pytest.param(("sqlite", "postgres"), id="sqlite-and-postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=PAIRS)
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two store URLs of the kinds the parameter names, each a fresh database."""
    kinds: tuple[str, str] = request.param
    schemas: list[str] = []
    server = str(request.getfixturevalue("postgres_url")) if "postgres" in kinds else ""
    made: list[str] = []
    for side, kind in zip("ab", kinds, strict=True):
        if kind == "sqlite":
            made.append(f"sqlite:///{tmp_path / f'{side}.db'}")
        else:
            schemas.append(f"t_{uuid.uuid4().hex}")
            made.append(f"{server}{'&' if '?' in server else '?'}schema={schemas[-1]}")
    yield made[0], made[1]
    if schemas:
        import psycopg

        with psycopg.connect(server, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _tagged(ctx: wf.WorkflowContext, n: int) -> Any:
    return (yield ctx.call_activity("tag", input=n))


def _waiter(ctx: wf.WorkflowContext, n: int) -> Any:
    got = yield ctx.wait_for_external_event("go")
    return (yield ctx.call_activity("tag", input=[n, got]))


@dataclass
class Side:
    """A runtime and a client on one store, and the activity inputs its runtime ran."""

    name: str
    runtime: wf.WorkflowRuntime
    client: wf.WorkflowClient
    stores: list[Store]
    ran: list[Any] = field(default_factory=list)

    def run(self, instance_id: str, n: int) -> Any:
        """Start ``_tagged`` as ``instance_id`` and return its output."""
        self.client.schedule_new_workflow("tagged", input=n, instance_id=instance_id)
        state = finish(self.client, instance_id)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
        return state.serialized_output


def _side(name: str, url: str) -> Side:
    runtime_store, client_store = open_store(url), open_store(url)
    runtime = wf.WorkflowRuntime(runtime_store)
    side = Side(name, runtime, wf.WorkflowClient(client_store), [runtime_store, client_store])

    def tag(ctx: wf.WorkflowActivityContext, n: Any) -> list[Any]:
        side.ran.append(n)
        return [name, n]

    runtime.register_workflow(_tagged, name="tagged")
    runtime.register_workflow(_waiter, name="waiter")
    runtime.register_activity(tag, name="tag")
    runtime.start()
    return side


@pytest.fixture
def sides(urls: tuple[str, str]) -> Iterator[tuple[Side, Side]]:
    """Side "a" on the first URL, side "b" on the second, both started."""
    made: list[Side] = []
    try:
        made.append(_side("a", urls[0]))
        made.append(_side("b", urls[1]))
        yield made[0], made[1]
    finally:
        for side in reversed(made):
            side.runtime.shutdown(timeout=5)
            for store in side.stores:
                store.close()


def test_workflows_complete_on_their_own_runtime_only(sides: tuple[Side, Side]) -> None:
    a, b = sides
    for n in range(5):  # the same instance ids on both stores
        a.client.schedule_new_workflow("tagged", input=n, instance_id=f"wf-{n}")
        b.client.schedule_new_workflow("tagged", input=10 + n, instance_id=f"wf-{n}")
    for n in range(5):
        assert finish(a.client, f"wf-{n}").serialized_output == f'["a",{n}]'
        assert finish(b.client, f"wf-{n}").serialized_output == f'["b",{10 + n}]'
    assert sorted(a.ran) == list(range(5))
    assert sorted(b.ran) == list(range(10, 15))
    a.run("only-a", 99)
    assert b.client.get_workflow_state("only-a") is None


def _quiet_tokens(store: Store) -> tuple[object, object]:
    """The store's change tokens once nothing has changed for 0.3 s (its runtime may still
    be finishing what a start began)."""
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        tokens = (store.change_token(), store.change_token(work_only=True))
        if store.wait_for_work(0.3, tokens[0]) == tokens[0]:
            return tokens
    raise AssertionError(f"the store {store.url} kept changing for 10 s")


def _wake_ups(store: Store, tokens: tuple[object, object]) -> tuple[object, object]:
    """What of ``tokens`` counts wake-ups. A SQLite store's tokens also carry the file's
    ``PRAGMA data_version``, which moves on every commit to that file by another connection,
    including the idle side's own runtime (its heartbeat, every 2 s): not a wake-up from the
    other store, whose file is another one."""
    if not isinstance(store, SqliteStore):
        return tokens
    everything, work = tokens
    assert isinstance(everything, tuple) and isinstance(work, WorkToken)
    kinds = (work.orchestrations, work.activities)
    assert all(isinstance(k, tuple) for k in kinds)
    return everything[0], tuple(k[0] for k in kinds if isinstance(k, tuple))


def _run_twin(here: Side) -> None:
    """On ``here``: the workflow "twin" started, sent its event, finished; five more run."""
    here.client.schedule_new_workflow("waiter", input=2, instance_id="twin")
    here.client.raise_workflow_event("twin", "go", data=here.name)
    output = finish(here.client, "twin").serialized_output
    assert output == f'["{here.name}",[2,"{here.name}"]]'
    for n in range(5):
        assert here.run(f"more-{n}", n) == f'["{here.name}",{n}]'


def test_work_on_one_store_neither_wakes_nor_hands_rows_to_the_other(
    sides: tuple[Side, Side],
) -> None:
    for here, there in (sides, sides[::-1]):
        # a workflow with the same id waits on the other store, its client watching it
        there.client.schedule_new_workflow("waiter", input=1, instance_id="twin")
        # its first turn done (on a loaded machine it may come after a quiet 0.3 s, and its
        # commit, letting the instance go, wakes the other side's workers)
        started = there.client.wait_for_workflow_start("twin", timeout_in_seconds=10)
        assert started is not None and started.runtime_status is wf.WorkflowStatus.RUNNING
        watched = there.client.store
        tokens = _quiet_tokens(watched)
        if isinstance(watched, InstanceWatcher):
            with watched.watching("twin") as handed:
                _run_twin(here)
                assert handed() == (None, False)  # no row of the other store's commits
        else:
            _run_twin(here)
        # the other side's runtime and client were idle all along: nothing woke them
        now = (watched.change_token(), watched.change_token(work_only=True))
        assert _wake_ups(watched, now) == _wake_ups(watched, tokens), (now, tokens)
        there.client.raise_workflow_event("twin", "go", data=there.name)
        output = finish(there.client, "twin").serialized_output
        assert output == f'["{there.name}",[1,"{there.name}"]]'
        for side in (here, there):
            side.client.purge_workflow("twin")
        for n in range(5):
            here.client.purge_workflow(f"more-{n}")
