"""Queries: list_workflows (filters, pagination) and get_workflow_history."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

import treadle as wf
from treadle.core.history import ExecutionCompleted, ExecutionStarted, TaskCompleted, TaskScheduled

from .helpers import Workflow, decoded, finish, wait_until


def _register(runtime: wf.WorkflowRuntime) -> None:
    @runtime.activity
    def add_one(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def quick(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        return (yield ctx.call_activity(add_one, input=n))

    @runtime.workflow
    def slow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        yield ctx.wait_for_external_event("go")
        return n


def _ids(page: wf.WorkflowPage) -> list[str]:
    return [s.instance_id for s in page.states]


def _start_batch(client: wf.WorkflowClient, prefix: str, name: str, n: int) -> list[str]:
    return [
        client.schedule_new_workflow(name, input=i, instance_id=f"{prefix}{i}") for i in range(n)
    ]


def test_list_filters_by_status_name_and_time(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register(runtime)
    t0 = datetime.now(timezone.utc)
    quick_ids = _start_batch(client, "q", "quick", 3)
    t1 = datetime.now(timezone.utc)
    slow_ids = _start_batch(client, "s", "slow", 2)
    t2 = datetime.now(timezone.utc)
    for iid in quick_ids:
        finish(client, iid)
    wait_until(
        lambda: len(client.list_workflows(status=wf.WorkflowStatus.RUNNING).states) == 2,
        what="both slow instances running",
    )

    assert sorted(_ids(client.list_workflows())) == sorted(quick_ids + slow_ids)
    assert sorted(_ids(client.list_workflows(status=wf.WorkflowStatus.COMPLETED))) == quick_ids
    assert sorted(_ids(client.list_workflows(status=wf.WorkflowStatus.RUNNING))) == slow_ids
    both = [wf.WorkflowStatus.RUNNING, wf.WorkflowStatus.COMPLETED]
    assert len(client.list_workflows(status=both).states) == 5
    assert client.list_workflows(status=wf.WorkflowStatus.FAILED).states == []
    assert sorted(_ids(client.list_workflows(name="slow"))) == slow_ids
    assert client.list_workflows(name="other").states == []
    # created_from is inclusive, created_to exclusive
    assert sorted(_ids(client.list_workflows(created_from=t0, created_to=t1))) == quick_ids
    assert sorted(_ids(client.list_workflows(created_from=t1, created_to=t2))) == slow_ids
    assert sorted(_ids(client.list_workflows(created_from=t1))) == slow_ids
    assert sorted(_ids(client.list_workflows(created_to=t1))) == quick_ids
    combined = client.list_workflows(
        status=wf.WorkflowStatus.RUNNING, name="slow", created_from=t0, created_to=t2
    )
    assert sorted(_ids(combined)) == slow_ids
    assert client.list_workflows(status=wf.WorkflowStatus.RUNNING, name="quick").states == []

    # terminated instances are found by their status too
    client.terminate_workflow(slow_ids[0])
    finish(client, slow_ids[0])
    assert _ids(client.list_workflows(status=wf.WorkflowStatus.TERMINATED)) == [slow_ids[0]]


def test_list_pages_through_everything_newest_first(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register(runtime)
    ids = _start_batch(client, "p", "slow", 7)
    seen: list[wf.WorkflowState] = []
    token = None
    pages = 0
    while True:
        page = client.list_workflows(page_size=3, continuation_token=token)
        pages += 1
        assert len(page.states) <= 3
        seen.extend(page.states)
        token = page.continuation_token
        if token is None:
            break
    assert pages == 3
    assert sorted(s.instance_id for s in seen) == sorted(ids)  # each exactly once
    created = [s.created_at for s in seen]
    assert created == sorted(created, reverse=True)
    # a filter applies across pages
    first = client.list_workflows(name="slow", page_size=5)
    assert len(first.states) == 5 and first.continuation_token is not None
    rest = client.list_workflows(
        name="slow", page_size=5, continuation_token=first.continuation_token
    )
    assert len(rest.states) == 2 and rest.continuation_token is None
    with pytest.raises(wf.InvalidInputError):
        client.list_workflows(page_size=0)


def test_get_workflow_history_records_every_step(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register(runtime)
    iid = client.schedule_new_workflow("quick", input=41)
    state = finish(client, iid)
    assert decoded(state.serialized_output) == 42

    history = client.get_workflow_history(iid)
    assert [e.KIND for e in history] == [
        "OrchestratorStarted",
        "ExecutionStarted",
        "TaskScheduled",
        "OrchestratorStarted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    _, started, scheduled, _, completed, done = history
    assert isinstance(started, ExecutionStarted) and isinstance(scheduled, TaskScheduled)
    assert isinstance(completed, TaskCompleted) and isinstance(done, ExecutionCompleted)
    assert (started.name, started.instance_id, started.input) == ("quick", iid, "41")
    assert (scheduled.event_id, scheduled.name, scheduled.input) == (1, "add_one", "41")
    assert scheduled.task_execution_id == f"{started.execution_id}:1"
    assert (completed.task_scheduled_id, completed.result) == (1, "42")
    assert completed.task_execution_id == scheduled.task_execution_id
    assert (done.status.name, done.result) == ("COMPLETED", "42")
    stamps = [e.timestamp for e in history]
    assert all(s.tzinfo is not None for s in stamps)

    with pytest.raises(wf.WorkflowNotFoundError, match="'missing'"):
        client.get_workflow_history("missing")
