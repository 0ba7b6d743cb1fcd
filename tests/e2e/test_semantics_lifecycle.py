"""Instance lifecycle: ids, scheduled starts, continue-as-new, suspend/resume, terminate, purge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import treadle as wf
from treadle.core.history import ExecutionStarted

from .helpers import Gate, Workflow, decoded, events_of, finish, kinds, status_of, wait_until


def _register_waiter(runtime: wf.WorkflowRuntime) -> None:
    @runtime.workflow
    def waiter(ctx: wf.WorkflowContext, n: object) -> Workflow[list[Any]]:
        ctx.set_custom_status({"waiting_for": "go", "n": n})
        data = yield ctx.wait_for_external_event("go")
        return [n, data]


# ---- ids and starts --------------------------------------------------------------------


def test_starting_an_unfinished_id_again_is_refused(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    client.schedule_new_workflow("waiter", input=1, instance_id="dup")
    with pytest.raises(wf.WorkflowAlreadyExistsError, match="'dup'"):
        client.schedule_new_workflow("waiter", input=2, instance_id="dup")
    wait_until(lambda: status_of(client, "dup") is wf.WorkflowStatus.RUNNING)
    with pytest.raises(wf.WorkflowAlreadyExistsError):
        client.schedule_new_workflow("waiter", input=3, instance_id="dup")
    client.raise_workflow_event("dup", "go", data="first")
    assert decoded(finish(client, "dup").serialized_output) == [1, "first"]


def test_a_finished_id_may_be_reused(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    client.schedule_new_workflow("waiter", input=1, instance_id="again")
    client.raise_workflow_event("again", "go", data="one")
    first = finish(client, "again")
    assert decoded(first.serialized_output) == [1, "one"]
    first_history = client.get_workflow_history("again")

    client.schedule_new_workflow("waiter", input=2, instance_id="again")
    client.raise_workflow_event("again", "go", data="two")
    second = finish(client, "again")
    assert decoded(second.serialized_output) == [2, "two"]
    assert second.created_at >= first.last_updated_at
    history = client.get_workflow_history("again")
    [started] = [e for e in history if isinstance(e, ExecutionStarted)]
    assert started.input == "2"
    assert isinstance(first_history[1], ExecutionStarted)
    assert started.execution_id != first_history[1].execution_id


def test_start_at_in_the_future_delays_the_start(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def scheduled(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any]]:
        first_turn = ctx.current_utc_datetime.isoformat()
        early = yield ctx.wait_for_external_event("early")
        return [first_turn, early]

    start_at = datetime.now(timezone.utc) + timedelta(milliseconds=600)
    iid = client.schedule_new_workflow(scheduled, start_at=start_at)
    assert status_of(client, iid) is wf.WorkflowStatus.PENDING
    # an event for a pending instance waits for the start
    client.raise_workflow_event(iid, "early", data="kept")
    assert status_of(client, iid) is wf.WorkflowStatus.PENDING

    state = finish(client, iid)
    first_turn, early = decoded(state.serialized_output)
    assert datetime.fromisoformat(first_turn) >= start_at
    assert early == "kept"
    [started] = events_of(client, iid, "ExecutionStarted")
    assert started.scheduled_start == start_at


def test_terminating_a_pending_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    start_at = datetime.now(timezone.utc) + timedelta(seconds=30)
    iid = client.schedule_new_workflow("waiter", start_at=start_at)
    client.terminate_workflow(iid, output="never started")
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    assert decoded(state.serialized_output) == "never started"


# ---- continue-as-new -------------------------------------------------------------------


def test_continue_as_new_restarts_the_history(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def bump(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n + 1

    @runtime.workflow
    def counter(ctx: wf.WorkflowContext, n: int) -> Workflow[int | None]:
        n = yield ctx.call_activity(bump, input=n)
        if n < 5:
            ctx.continue_as_new(n)
            return None
        return n

    iid = client.schedule_new_workflow(counter, input=0)
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == 5
    history = client.get_workflow_history(iid)
    # only the last run: one start (with the last input), one activity, one completion
    assert [e.KIND for e in history if e.KIND != "OrchestratorStarted"] == [
        "ExecutionStarted",
        "TaskScheduled",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert isinstance(history[1], ExecutionStarted)
    assert history[1].input == "4"
    assert history[1].execution_id != ""
    assert decoded(state.serialized_input) == 4


def test_continue_as_new_with_save_events_carries_unprocessed_events(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()

    @runtime.activity
    def hold(ctx: wf.WorkflowActivityContext, _: object) -> None:
        gate.hold()

    @runtime.workflow
    def gather(ctx: wf.WorkflowContext, seen: list[str]) -> Workflow[list[str] | None]:
        if len(seen) == 3:
            return seen
        item = yield ctx.wait_for_external_event("item")
        if not seen:
            yield ctx.call_activity(hold)  # the test raises two more events meanwhile
        ctx.continue_as_new([*seen, item], save_events=True)
        return None

    iid = client.schedule_new_workflow(gather, input=[])
    wait_until(lambda: "ExecutionStarted" in kinds(client, iid))
    client.raise_workflow_event(iid, "item", data="a")
    gate.wait_entered()
    client.raise_workflow_event(iid, "item", data="b")
    client.raise_workflow_event(iid, "item", data="c")
    wait_until(lambda: kinds(client, iid).count("EventRaised") == 3)
    gate.open()
    state = finish(client, iid)
    assert decoded(state.serialized_output) == ["a", "b", "c"]


def test_continue_as_new_without_save_events_drops_unprocessed_events(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()

    @runtime.activity
    def hold(ctx: wf.WorkflowActivityContext, _: object) -> None:
        gate.hold()

    @runtime.workflow
    def gather_once(ctx: wf.WorkflowContext, generation: int) -> Workflow[str | None]:
        if generation == 1:
            try:
                yield ctx.wait_for_external_event("item", timeout=timedelta(milliseconds=200))
            except TimeoutError:
                return "dropped"
            return "carried"
        yield ctx.wait_for_external_event("item")
        yield ctx.call_activity(hold)
        ctx.continue_as_new(1)
        return None

    iid = client.schedule_new_workflow(gather_once, input=0)
    wait_until(lambda: "ExecutionStarted" in kinds(client, iid))
    client.raise_workflow_event(iid, "item", data="a")
    gate.wait_entered()
    client.raise_workflow_event(iid, "item", data="b")
    wait_until(lambda: kinds(client, iid).count("EventRaised") == 2)
    gate.open()
    assert decoded(finish(client, iid).serialized_output) == "dropped"


# ---- suspend and resume ----------------------------------------------------------------


def test_suspend_holds_events_until_resume(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    iid = client.schedule_new_workflow("waiter", input=7)
    wait_until(lambda: "ExecutionStarted" in kinds(client, iid))

    client.suspend_workflow(iid)
    wait_until(lambda: status_of(client, iid) is wf.WorkflowStatus.SUSPENDED)
    client.raise_workflow_event(iid, "go", data="while suspended")
    # the event is recorded, but the workflow does not see it yet
    wait_until(lambda: "EventRaised" in kinds(client, iid), what="the event in history")
    assert status_of(client, iid) is wf.WorkflowStatus.SUSPENDED

    client.resume_workflow(iid)
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == [7, "while suspended"]
    order = [k for k in kinds(client, iid) if k.startswith("Execution") or k == "EventRaised"]
    assert order == [
        "ExecutionStarted",
        "ExecutionSuspended",
        "EventRaised",
        "ExecutionResumed",
        "ExecutionCompleted",
    ]


def test_suspended_instance_survives_a_runtime_restart(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    first = make_runtime()
    _register_waiter(first)
    iid = client.schedule_new_workflow("waiter", input=8)
    wait_until(lambda: "ExecutionStarted" in kinds(client, iid))
    client.pause_workflow(iid)
    client.raise_workflow_event(iid, "go", data="held")
    wait_until(lambda: "EventRaised" in kinds(client, iid))
    assert status_of(client, iid) is wf.WorkflowStatus.SUSPENDED
    first.shutdown()

    second = make_runtime()  # rebuilds the instance by replaying its history
    _register_waiter(second)
    client.resume_workflow(iid)
    assert decoded(finish(client, iid).serialized_output) == [8, "held"]


# ---- terminate, custom status, state ---------------------------------------------------


def test_terminate_with_output(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    _register_waiter(runtime)
    iid = client.schedule_new_workflow("waiter", input=1)
    wait_until(lambda: status_of(client, iid) is wf.WorkflowStatus.RUNNING)
    client.terminate_workflow(iid, output={"cancelled_by": "ops", "code": 0})
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    assert decoded(state.serialized_output) == {"cancelled_by": "ops", "code": 0}
    assert state.failure_details is None
    assert kinds(client, iid)[-1] == "ExecutionCompleted"
    # terminating a finished instance changes nothing
    client.terminate_workflow(iid, output="again")
    again = client.get_workflow_state(iid)
    assert again is not None and again.serialized_output == state.serialized_output


@pytest.mark.parametrize("cleanup", ["yields", "raises"])
def test_a_workflow_whose_cleanup_misbehaves_is_terminated_anyway(
    runtime: wf.WorkflowRuntime,
    client: wf.WorkflowClient,
    cleanup: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Terminating closes the workflow's generator (its finally blocks run); one that yields
    again or raises there is terminated all the same, with a warning, and the runtime goes
    on (it used to retry the termination for ever)."""

    @runtime.activity
    def tidy(ctx: wf.WorkflowActivityContext, _: object) -> str:
        return "tidied"

    @runtime.workflow
    def stubborn(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        try:
            yield ctx.wait_for_external_event("never")
        finally:
            if cleanup == "yields":
                yield ctx.call_activity(tidy)
            raise RuntimeError("cleanup failed")

    @runtime.workflow
    def plain(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity(tidy))

    iid = client.schedule_new_workflow(stubborn)
    wait_until(lambda: status_of(client, iid) is wf.WorkflowStatus.RUNNING)
    with caplog.at_level("WARNING", logger="treadle.workflow"):
        client.terminate_workflow(iid, output="stop")
        state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.TERMINATED
    assert decoded(state.serialized_output) == "stop"
    assert "did not stop cleanly when terminated" in caplog.text
    after = finish(client, client.schedule_new_workflow(plain))
    assert decoded(after.serialized_output) == "tidied"


def test_custom_status_is_visible_while_running(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    iid = client.schedule_new_workflow("waiter", input=3)
    state = wait_until(
        lambda: (s := client.get_workflow_state(iid)) and s.serialized_custom_status and s
    )
    assert isinstance(state, wf.WorkflowState)
    assert state.runtime_status is wf.WorkflowStatus.RUNNING
    assert decoded(state.serialized_custom_status) == {"waiting_for": "go", "n": 3}


def test_get_workflow_state_with_and_without_payloads(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    before = datetime.now(timezone.utc)
    iid = client.schedule_new_workflow("waiter", input={"order": 9}, instance_id="s-1")
    client.raise_workflow_event(iid, "go", data="ok")
    full = finish(client, iid)
    assert full.instance_id == "s-1"
    assert full.name == "waiter"
    assert full.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(full.serialized_input) == {"order": 9}
    assert decoded(full.serialized_output) == [{"order": 9}, "ok"]
    assert decoded(full.serialized_custom_status) == {"waiting_for": "go", "n": {"order": 9}}
    assert before <= full.created_at <= full.last_updated_at <= datetime.now(timezone.utc)

    bare = client.get_workflow_state(iid, fetch_payloads=False)
    assert bare is not None
    assert bare.serialized_input is None
    assert bare.serialized_output is None
    assert bare.serialized_custom_status is None
    assert (bare.instance_id, bare.name, bare.runtime_status) == (
        full.instance_id,
        full.name,
        full.runtime_status,
    )
    assert (bare.created_at, bare.last_updated_at) == (full.created_at, full.last_updated_at)
    assert client.get_workflow_state("no-such-id") is None


# ---- purge -----------------------------------------------------------------------------


def test_purge_refuses_a_running_instance_and_deletes_a_finished_one(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    iid = client.schedule_new_workflow("waiter", input=1)
    wait_until(lambda: status_of(client, iid) is wf.WorkflowStatus.RUNNING)
    with pytest.raises(wf.WorkflowStateError, match="has not finished"):
        client.purge_workflow(iid)
    assert status_of(client, iid) is wf.WorkflowStatus.RUNNING

    client.raise_workflow_event(iid, "go", data=1)
    finish(client, iid)
    assert client.purge_workflow(iid) == 1
    assert client.get_workflow_state(iid) is None
    with pytest.raises(wf.WorkflowNotFoundError):
        client.get_workflow_history(iid)
    with pytest.raises(wf.WorkflowNotFoundError):
        client.raise_workflow_event(iid, "go")
    assert client.purge_workflow(iid) == 0


def test_purge_of_a_terminated_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_waiter(runtime)
    iid = client.schedule_new_workflow("waiter", input=1)
    client.terminate_workflow(iid)
    finish(client, iid)
    assert client.purge_workflow(iid) == 1
    assert client.list_workflows().states == []


def test_work_committed_as_a_runtime_starts_is_picked_up_at_once(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    # A start committed between the runtime's first claim and its watcher's first look at
    # the store used to wait for the one-second poll. The race is narrow: try it often.
    def quick(ctx: wf.WorkflowActivityContext, _: object) -> str:
        return "done"

    lags = []
    for _ in range(12):
        runtime = make_runtime(start=False)
        runtime.register_workflow(quick)
        runtime.start()
        iid = client.schedule_new_workflow(quick)
        finish(client, iid)
        first_turn, started = client.get_workflow_history(iid)[:2]
        lags.append((first_turn.timestamp - started.timestamp).total_seconds())
        runtime.shutdown()
    assert max(lags) < 0.5, lags
