"""Rerunning a finished instance from one of its activities (client API and CLI)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import treadle as wf
from treadle.cli import main

from .helpers import Workflow, finish, wait_until

CALLS: list[tuple[str, int]] = []


def double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    CALLS.append((ctx.workflow_id, x))
    return 2 * x


def chain(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
    total = 0
    for i in range(n):
        total += yield ctx.call_activity(double, input=i)
    return total


def waits(ctx: wf.WorkflowContext, _: object) -> Workflow[int]:
    first: int = yield ctx.call_activity(double, input=1)
    yield ctx.create_timer(ctx.current_utc_datetime.replace(year=9999))
    return first


@pytest.fixture
def started(runtime: wf.WorkflowRuntime) -> wf.WorkflowRuntime:
    CALLS.clear()
    runtime.register_workflow(chain)
    runtime.register_workflow(waits)
    runtime.register_activity(double)
    return runtime


def test_rerun_keeps_earlier_results_and_runs_the_rest_again(
    started: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    source = client.schedule_new_workflow(chain, input=4, instance_id="src")
    assert finish(client, source).serialized_output == "12"  # 0 + 2 + 4 + 6
    CALLS.clear()
    new_id = client.rerun_workflow_from_event(source, 3, new_instance_id="again")
    state = finish(client, new_id)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.serialized_output == "12"
    assert sorted(x for iid, x in CALLS if iid == "again") == [2, 3]  # steps 1 and 2 reused
    kinds = [e.KIND for e in client.get_workflow_history(new_id)]
    assert kinds.count("TaskScheduled") == 4 and kinds.count("TaskCompleted") == 4


def test_rerun_with_a_new_input_for_the_activity(
    started: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    source = client.schedule_new_workflow(chain, input=3)
    finish(client, source)
    new_id = client.rerun_workflow_from_event(source, 2, input=10)
    assert finish(client, new_id).serialized_output == "24"  # 0 + 2*10 + 2*2


def test_rerun_from_zero_restarts_with_the_same_or_a_new_input(
    started: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    source = client.schedule_new_workflow(chain, input=2)
    finish(client, source)
    assert finish(client, client.rerun_workflow_from_event(source, 0)).serialized_output == "2"
    again = client.rerun_workflow_from_event(source, 0, input=3)
    assert finish(client, again).serialized_output == "6"


def test_rerun_refuses_unfinished_sources_and_unknown_events(
    started: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    running = client.schedule_new_workflow(waits)
    wait_until(lambda: any(e.KIND == "TimerCreated" for e in client.get_workflow_history(running)))
    with pytest.raises(wf.WorkflowStateError, match="only a finished workflow"):
        client.rerun_workflow_from_event(running, 1)
    client.terminate_workflow(running)
    finish(client, running)
    with pytest.raises(wf.InvalidInputError, match="no activity scheduled as event 7"):
        client.rerun_workflow_from_event(running, 7)
    with pytest.raises(wf.WorkflowNotFoundError):
        client.rerun_workflow_from_event("no-such-instance", 1)


def test_rerun_recreates_pending_timers(
    started: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    source = client.schedule_new_workflow(waits)
    wait_until(lambda: any(e.KIND == "TimerCreated" for e in client.get_workflow_history(source)))
    client.terminate_workflow(source)
    finish(client, source)
    new_id = client.rerun_workflow_from_event(source, 1)
    wait_until(lambda: any(e.KIND == "TimerCreated" for e in client.get_workflow_history(new_id)))
    state = client.get_workflow_state(new_id)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.RUNNING


def test_cli_rerun(started: wf.WorkflowRuntime, client: wf.WorkflowClient, store_url: str) -> None:
    source = client.schedule_new_workflow(chain, input=3, instance_id="cli-src")
    finish(client, source)
    result = CliRunner().invoke(
        main, ["--db", store_url, "workflow", "rerun", "cli-src", "--from-event", "2",
               "--id", "cli-new", "--input", "10"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cli-new" in result.output
    assert finish(client, "cli-new").serialized_output == "24"
