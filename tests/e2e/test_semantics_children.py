"""Child workflows: results and failures propagate; ids; recursive terminate and purge."""

from __future__ import annotations

from typing import Any

import pytest

import treadle as wf

from .helpers import Workflow, decoded, events_of, finish, status_of, wait_until


def _register_family(runtime: wf.WorkflowRuntime) -> None:
    """parent -> child -> grandchild, each waiting for an event that never comes."""

    @runtime.workflow
    def grandchild(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.wait_for_external_event("never")

    @runtime.workflow
    def child(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_child_workflow(grandchild)

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_child_workflow(child)


def test_child_result_propagates(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    @runtime.activity
    def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n * 2

    @runtime.workflow
    def child(ctx: wf.WorkflowContext, n: int) -> Workflow[dict[str, Any]]:
        return {"child_of": n, "doubled": (yield ctx.call_activity(double, input=n))}

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, n: int) -> Workflow[list[Any]]:
        result = yield ctx.call_child_workflow(child, input=n + 1)
        return [result, ctx.instance_id]

    state = finish(client, client.schedule_new_workflow(parent, input=20, instance_id="p"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == [{"child_of": 21, "doubled": 42}, "p"]


def test_child_failure_is_a_task_failed_error_in_the_parent(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def child(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        raise ValueError("child broke")
        yield  # pragma: no cover

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any] | str]:
        try:
            yield ctx.call_child_workflow(child)
        except wf.TaskFailedError as e:
            trace = e.details.stack_trace or ""
            return [e.details.error_type, e.details.message, "in child" in trace]
        return "not reached"

    iid = client.schedule_new_workflow(parent, instance_id="p")
    state = finish(client, iid)
    assert decoded(state.serialized_output) == ["ValueError", "child broke", True]
    child_state = client.get_workflow_state("p:0001")
    assert child_state is not None and child_state.failure_details is not None
    assert child_state.runtime_status is wf.WorkflowStatus.FAILED
    assert child_state.failure_details.message == "child broke"


def test_uncaught_child_failure_fails_the_parent(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def child(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        raise ValueError("child broke")
        yield  # pragma: no cover

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_child_workflow(child)

    state = finish(client, client.schedule_new_workflow(parent))
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TaskFailedError"
    assert "child broke" in state.failure_details.message


def test_default_child_id_is_parent_id_and_hex_sequence(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def noop(ctx: wf.WorkflowActivityContext, i: int) -> int:
        return i

    @runtime.workflow
    def child(ctx: wf.WorkflowContext, n: object) -> str:
        return ctx.instance_id

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any]]:
        yield wf.when_all([ctx.call_activity(noop, input=i) for i in range(10)])  # seq 1..10
        first = yield ctx.call_child_workflow(child)  # seq 11
        named = yield ctx.call_child_workflow(child, instance_id="named-child")  # seq 12
        return [first, named]

    state = finish(client, client.schedule_new_workflow(parent, instance_id="order-7"))
    assert decoded(state.serialized_output) == ["order-7:000b", "named-child"]
    created = events_of(client, "order-7", "SubOrchestrationInstanceCreated")
    assert [(e.event_id, e.instance_id, e.name) for e in created] == [
        (11, "order-7:000b", "child"),
        (12, "named-child", "child"),
    ]
    for child_id in ("order-7:000b", "named-child"):
        assert status_of(client, child_id) is wf.WorkflowStatus.COMPLETED


def test_terminate_is_recursive(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    _register_family(runtime)
    client.schedule_new_workflow("parent", instance_id="fam")
    ids = ["fam", "fam:0001", "fam:0001:0001"]
    wait_until(lambda: status_of(client, ids[-1]) is wf.WorkflowStatus.RUNNING)

    client.terminate_workflow("fam", output={"reason": "cancelled by test"})

    for iid in ids:
        state = finish(client, iid)
        assert state.runtime_status is wf.WorkflowStatus.TERMINATED, iid
    assert decoded(finish(client, "fam").serialized_output) == {"reason": "cancelled by test"}


def test_terminate_not_recursive_leaves_children_running(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_family(runtime)
    client.schedule_new_workflow("parent", instance_id="fam")
    wait_until(lambda: status_of(client, "fam:0001:0001") is wf.WorkflowStatus.RUNNING)

    client.terminate_workflow("fam", recursive=False)

    assert finish(client, "fam").runtime_status is wf.WorkflowStatus.TERMINATED
    # the parent's end reaches the child only as an ignored result; give it a moment to act
    with pytest.raises(TimeoutError):
        client.wait_for_workflow_completion("fam:0001", timeout_in_seconds=0.5)
    assert status_of(client, "fam:0001") is wf.WorkflowStatus.RUNNING
    assert status_of(client, "fam:0001:0001") is wf.WorkflowStatus.RUNNING


def test_purge_is_recursive(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    @runtime.workflow
    def leaf(ctx: wf.WorkflowContext, n: int) -> int:
        return n

    @runtime.workflow
    def middle(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        leaf_result: int = yield ctx.call_child_workflow(leaf, input=n)
        return leaf_result + 1

    @runtime.workflow
    def top(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        middle_result: int = yield ctx.call_child_workflow(middle, input=n)
        return middle_result + 1

    finish(client, client.schedule_new_workflow(top, input=1, instance_id="t"))
    ids = ["t", "t:0001", "t:0001:0001"]
    assert all(status_of(client, i) is wf.WorkflowStatus.COMPLETED for i in ids)

    assert client.purge_workflow("t") == 3
    for iid in ids:
        assert client.get_workflow_state(iid) is None
        with pytest.raises(wf.WorkflowNotFoundError):
            client.get_workflow_history(iid)


def test_purge_not_recursive_keeps_children(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def leaf(ctx: wf.WorkflowContext, n: int) -> int:
        return n

    @runtime.workflow
    def top(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        return (yield ctx.call_child_workflow(leaf, input=n))

    finish(client, client.schedule_new_workflow(top, input=1, instance_id="t"))
    assert client.purge_workflow("t", recursive=False) == 1
    assert client.get_workflow_state("t") is None
    assert status_of(client, "t:0001") is wf.WorkflowStatus.COMPLETED


def test_recursive_purge_refuses_while_a_child_runs(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def waiter(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.wait_for_external_event("never")

    @runtime.workflow
    def fire_and_forget(ctx: wf.WorkflowContext, _: object) -> str:
        ctx.call_child_workflow(waiter)  # not awaited: the parent finishes first
        return "done"

    finish(client, client.schedule_new_workflow(fire_and_forget, instance_id="f"))
    wait_until(lambda: status_of(client, "f:0001") is wf.WorkflowStatus.RUNNING)
    with pytest.raises(wf.WorkflowStateError, match="'f:0001'"):
        client.purge_workflow("f")
    assert status_of(client, "f") is wf.WorkflowStatus.COMPLETED


def test_a_child_created_in_the_turn_that_terminates_its_parent_ends_with_it(
    make_runtime: Any, client: wf.WorkflowClient
) -> None:
    """The event that makes a parent create a child and a termination reach it together:
    one turn creates the child and ends the parent, and the child ends with it (its
    termination is not lost for being sent in the turn that creates it)."""

    def register(runtime: wf.WorkflowRuntime) -> None:
        @runtime.workflow
        def napper(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
            yield ctx.wait_for_external_event("never")

        @runtime.workflow
        def waiter(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
            yield ctx.wait_for_external_event("go")
            yield ctx.call_child_workflow(napper, instance_id="w.c")

    first = make_runtime(start=False)
    register(first)
    first.start()
    client.schedule_new_workflow("waiter", instance_id="w")
    wait_until(lambda: status_of(client, "w") is wf.WorkflowStatus.RUNNING)
    first.shutdown(timeout=5)
    # nobody runs it now: the event and the termination wait together in its inbox
    client.operations.control_wait_s = 0
    client.raise_workflow_event("w", "go")
    client.terminate_workflow("w")
    second = make_runtime(start=False)
    register(second)
    second.start()

    assert finish(client, "w").runtime_status is wf.WorkflowStatus.TERMINATED
    assert [e.instance_id for e in events_of(client, "w", "SubOrchestrationInstanceCreated")] == [
        "w.c"
    ]
    assert finish(client, "w.c").runtime_status is wf.WorkflowStatus.TERMINATED
