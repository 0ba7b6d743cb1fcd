"""``treadle.aio.DaprWorkflowClient``: every method of the sync client as a coroutine, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import treadle as wf
from treadle import aio


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/aio.db"
    schema_url: str = request.getfixturevalue("postgres_schema_url")
    return schema_url


@pytest.fixture
def runtime(url: str) -> Iterator[wf.WorkflowRuntime]:
    """A runtime with a workflow that waits for an event and one that finishes at once."""
    runtime = wf.WorkflowRuntime(url)

    @runtime.activity(name="double")
    def double(ctx: wf.WorkflowActivityContext, value: int) -> int:
        return value * 2

    @runtime.workflow(name="doubler")
    def doubler(ctx: wf.WorkflowContext, value: int):  # type: ignore[no-untyped-def]
        return (yield ctx.call_activity(double, input=value))

    @runtime.workflow(name="waiter")
    def waiter(ctx: wf.WorkflowContext, _: None):  # type: ignore[no-untyped-def]
        return (yield ctx.wait_for_external_event("go"))

    with runtime:
        yield runtime


def test_every_sync_method_has_a_coroutine() -> None:
    sync_methods = {
        name
        for name, member in inspect.getmembers(wf.WorkflowClient, inspect.isfunction)
        if not name.startswith("_")
    }
    for name in sync_methods:
        member = getattr(aio.DaprWorkflowClient, name, None)
        assert member is not None, f"treadle.aio.DaprWorkflowClient lacks {name}"
        assert inspect.iscoroutinefunction(member), f"{name} is not a coroutine"
        sync_params = inspect.signature(getattr(wf.WorkflowClient, name)).parameters
        async_params = inspect.signature(member).parameters
        assert list(sync_params) == list(async_params), name
    assert aio.WorkflowClient is aio.DaprWorkflowClient


def test_the_async_client_drives_instances(url: str, runtime: wf.WorkflowRuntime) -> None:
    async def scenario() -> None:
        async with aio.DaprWorkflowClient(url) as client:
            iid = await client.schedule_new_workflow("doubler", input=21, instance_id="d-1")
            state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
            assert state.serialized_output == "42"

            waiting = await client.schedule_new_workflow("waiter", instance_id="w-1")
            started = await client.wait_for_workflow_start(waiting, timeout_in_seconds=30)
            assert started is not None
            with pytest.raises(TimeoutError):
                await client.wait_for_workflow_completion(waiting, timeout_in_seconds=0.2)
            await client.pause_workflow(waiting)  # visible when it returns
            paused = await client.get_workflow_state(waiting)
            assert paused is not None and paused.runtime_status is wf.WorkflowStatus.SUSPENDED
            await client.resume_workflow(waiting)
            resumed = await client.get_workflow_state(waiting)
            assert resumed is not None and resumed.runtime_status is wf.WorkflowStatus.RUNNING
            # many waits at once do not block one another or the loop
            waits = [
                client.wait_for_workflow_completion(waiting, timeout_in_seconds=30)
                for _ in range(20)
            ]
            await client.raise_workflow_event(waiting, "go", data={"ok": True})
            for finished in await asyncio.gather(*waits):
                assert finished is not None
                assert json.loads(finished.serialized_output or "") == {"ok": True}

            page = await client.list_workflows(status=wf.WorkflowStatus.COMPLETED)
            assert {s.instance_id for s in page.states} == {"d-1", "w-1"}
            history = await client.get_workflow_history("d-1")
            assert [e.KIND for e in history][:2] == ["OrchestratorStarted", "ExecutionStarted"]
            exported = json.loads(await client.export_workflow_history("d-1"))
            assert (exported["format"], exported["instance_id"]) == ("treadle.history", "d-1")
            assert len(exported["events"]) == len(history)
            rerun = await client.rerun_workflow_from_event("d-1", 0, new_instance_id="d-2")
            again = await client.wait_for_workflow_completion(rerun, timeout_in_seconds=30)
            assert again is not None and again.serialized_output == "42"

            stopped = await client.schedule_new_workflow("waiter", instance_id="t-1")
            await client.wait_for_workflow_start(stopped, timeout_in_seconds=30)
            await client.terminate_workflow(stopped, output="bye")
            ended = await client.get_workflow_state(stopped)
            assert ended is not None and ended.runtime_status is wf.WorkflowStatus.TERMINATED

            assert await client.purge_workflow("t-1") == 1
            assert await client.get_workflow_state("t-1") is None

    asyncio.run(scenario())
