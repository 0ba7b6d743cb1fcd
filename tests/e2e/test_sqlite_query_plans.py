"""No statement a SQLite worker runs reads every instance or every history row of the file.

A runtime's statements (claims, commits, activity claims, wake-ups, lease bookkeeping) are
recorded while workflows use every kind of step (activities, a retry, a child workflow, a
timer, an external event); each is then asked for its query plan (SQLite plans without
statistics, from the schema and the statement alone: the same on any store). A statement that
scans the instances or the history would cost more with every finished workflow the file
holds, as the claim's did once (its join began with the instances for its GROUP BY). Scans of
the inbox and of the activity tasks are allowed (their rows are deleted once delivered or run),
and so are those of the index of held instances (as many as are leased).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

import treadle as wf
from bench.sqlite_statements import FULL_SCAN


class _Recording(sqlite3.Connection):
    """A connection that notes each statement it runs with its first parameters."""

    seen: ClassVar[dict[str, Any]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        with self.lock:
            self.seen.setdefault(sql, parameters)
        return super().execute(sql, parameters)


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The statements (and their first parameters) run on connections opened meanwhile."""
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, **kwargs, factory=_Recording)

    _Recording.seen = {}
    monkeypatch.setattr(sqlite3, "connect", recording)
    yield _Recording.seen


def step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


_FLAKY_CALLS: list[int] = []


def flaky(ctx: wf.WorkflowActivityContext, x: int) -> int:
    _FLAKY_CALLS.append(x)
    if _FLAKY_CALLS.count(x) == 1:
        raise RuntimeError("fails once")
    return x


def child(ctx: wf.DaprWorkflowContext, x: int) -> Any:
    return (yield ctx.call_activity(step, input=x))


def parent(ctx: wf.DaprWorkflowContext, x: int) -> Any:
    a = yield ctx.call_activity(step, input=x)
    retry = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=3
    )
    b = yield ctx.call_activity(flaky, input=a, retry_policy=retry)
    c = yield ctx.call_child_workflow(child, input=b)
    yield ctx.create_timer(timedelta(milliseconds=50))
    e = yield ctx.wait_for_external_event("go")
    return [a, b, c, e]


def test_a_worker_s_statements_read_no_whole_table_of_instances_or_history(
    tmp_path: Path, recorded: dict[str, Any]
) -> None:
    url = f"sqlite:///{tmp_path / 'plans.db'}"
    runtime = wf.WorkflowRuntime(store=url)
    runtime.register_workflow(parent)
    runtime.register_workflow(child)
    runtime.register_activity(step)
    runtime.register_activity(flaky)
    with runtime, wf.DaprWorkflowClient(store=url) as client:
        ids = [client.schedule_new_workflow(parent, input=i * 10) for i in range(3)]
        for iid in ids:
            client.wait_for_workflow_start(iid, timeout_in_seconds=30)
            client.raise_workflow_event(iid, "go", data=1)
        for iid, i in zip(ids, range(3), strict=True):
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
            assert state is not None
            assert json.loads(state.serialized_output or "") == [
                i * 10 + 1,
                i * 10 + 1,
                i * 10 + 2,
                1,
            ]
    plans = sqlite3.connect(tmp_path / "plans.db")
    try:
        looked = 0
        scans = []
        for sql, parameters in list(recorded.items()):
            if (
                not sql.lstrip()
                .upper()
                .startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH"))
            ):
                continue
            looked += 1
            plan = [row[3] for row in plans.execute("EXPLAIN QUERY PLAN " + sql, parameters)]
            scans += [f"{sql}\n    {' | '.join(plan)}" for line in plan if FULL_SCAN.match(line)]
    finally:
        plans.close()
    assert looked > 20, looked  # (the claims, commits and lease bookkeeping were seen)
    assert not scans, "\n".join(scans)
