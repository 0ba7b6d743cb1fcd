"""History propagation: what children and activities receive with each scope, through the
store (child starts, queued activity tasks) and across continue-as-new."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import treadle as wf

from .helpers import Workflow, decoded, finish


def _summary(history: wf.PropagatedHistory | None) -> Any:
    """What a callee saw: the chain's (app, instance, workflow) and the activities each
    workflow of it called, with their outputs."""
    if history is None:
        return None
    return {
        "scope": history.scope.name,
        "chain": [[w.app_id, w.instance_id, w.name] for w in history.get_workflows()],
        "validated": [
            [a.completed, a.output]
            for w in history.get_workflows()
            for a in w.get_activities_by_name("validate")
        ],
    }


def _register_chain(runtime: wf.WorkflowRuntime, middle_scope: wf.PropagationScope) -> None:
    """root -> middle (OWN_HISTORY) -> leaf (``middle_scope``), and an audit activity of the
    middle called with LINEAGE; each callee returns what it saw."""

    @runtime.activity
    def validate(ctx: wf.WorkflowActivityContext, who: str) -> dict[str, Any]:
        return {"who": who, "ok": True}

    @runtime.activity
    def audit(ctx: wf.WorkflowActivityContext, _: object) -> Any:
        return _summary(ctx.get_propagated_history())

    @runtime.workflow
    def leaf(ctx: wf.WorkflowContext, _: object) -> Any:
        return _summary(ctx.get_propagated_history())

    @runtime.workflow
    def middle(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity(validate, input="middle")
        seen = _summary(ctx.get_propagated_history())
        below = yield ctx.call_child_workflow(leaf, instance_id="leaf", propagation=middle_scope)
        audited = yield ctx.call_activity(audit, propagation=wf.PropagationScope.LINEAGE)
        return {"middle": seen, "leaf": below, "audit": audited}

    @runtime.workflow
    def root(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        yield ctx.call_activity(validate, input="root")
        return (
            yield ctx.call_child_workflow(
                middle, instance_id="middle", propagation=wf.PropagationScope.OWN_HISTORY
            )
        )


def test_a_child_sees_its_parents_history_and_lineage_reaches_the_grandchild(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_chain(runtime, wf.PropagationScope.LINEAGE)
    state = finish(client, client.schedule_new_workflow("root", instance_id="root"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state.failure_details
    out = decoded(state.serialized_output)
    root_seen = [True, '{"who":"root","ok":true}']
    middle_seen = [True, '{"who":"middle","ok":true}']
    assert out["middle"] == {
        "scope": "OWN_HISTORY",
        "chain": [["treadle", "root", "root"]],
        "validated": [root_seen],
    }
    lineage = {
        "scope": "LINEAGE",
        "chain": [["treadle", "root", "root"], ["treadle", "middle", "middle"]],
        "validated": [root_seen, middle_seen],
    }
    assert out["leaf"] == lineage
    assert out["audit"] == lineage


def test_own_history_is_a_trust_boundary(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    _register_chain(runtime, wf.PropagationScope.OWN_HISTORY)
    state = finish(client, client.schedule_new_workflow("root", instance_id="root"))
    out = decoded(state.serialized_output)
    assert out["leaf"]["chain"] == [["treadle", "middle", "middle"]]
    assert out["audit"]["chain"] == [["treadle", "root", "root"], ["treadle", "middle", "middle"]]


def test_no_propagation_by_default(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    @runtime.activity
    def look(ctx: wf.WorkflowActivityContext, _: object) -> Any:
        return ctx.get_propagated_history() is None

    @runtime.workflow
    def child(ctx: wf.WorkflowContext, _: object) -> Any:
        return ctx.get_propagated_history() is None

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        a = yield ctx.call_activity(look)
        b = yield ctx.call_child_workflow(child)
        return [a, b, ctx.get_propagated_history() is None]

    state = finish(client, client.schedule_new_workflow(parent))
    assert decoded(state.serialized_output) == [True, True, True]


def test_queued_activities_read_their_history_from_the_store(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    # One activity at a time: the others wait in the task queue and are claimed from it.
    runtime = make_runtime(start=False, max_concurrent_activities=1)

    @runtime.activity
    def look(ctx: wf.WorkflowActivityContext, n: int) -> Any:
        history = ctx.get_propagated_history()
        assert history is not None
        [parent] = history.get_workflows()
        return [n, history.scope.name, len(parent.get_activities_by_name("look"))]

    @runtime.workflow
    def fan(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        tasks = [
            ctx.call_activity(look, input=n, propagation=wf.PropagationScope.OWN_HISTORY)
            for n in range(4)
        ]
        return (yield wf.when_all(tasks))

    runtime.start()
    state = finish(client, client.schedule_new_workflow(fan))
    # each sees the calls scheduled up to and including its own
    assert decoded(state.serialized_output) == [[n, "OWN_HISTORY", n + 1] for n in range(4)]


def test_the_next_run_of_a_child_that_continues_as_new_gets_the_run_before(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.activity
    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n

    @runtime.workflow
    def looping(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        yield ctx.call_activity(step, input=n)
        history = ctx.get_propagated_history()
        assert history is not None
        chain = [w.instance_id for w in history.get_workflows()]
        if n < 2:
            ctx.continue_as_new(n + 1)
            return None
        steps = [a.input for a in history.get_workflows()[-1].get_activities_by_name("step")]
        return [chain, steps]

    @runtime.workflow
    def parent(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (
            yield ctx.call_child_workflow(
                looping, input=0, instance_id="loop", propagation=wf.PropagationScope.LINEAGE
            )
        )

    @runtime.workflow
    def root_loop(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        yield ctx.call_activity(step, input=n)
        if n < 1:
            ctx.continue_as_new(n + 1)
            return None
        return ctx.get_propagated_history() is None

    state = finish(client, client.schedule_new_workflow(parent, instance_id="p"))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state.failure_details
    # LINEAGE: the parent's chunk, then each earlier run of the loop, the latest last
    assert decoded(state.serialized_output) == [["p", "loop", "loop"], ["1"]]
    # a root workflow received nothing, so its next runs receive nothing either
    root = finish(client, client.schedule_new_workflow(root_loop, input=0))
    assert decoded(root.serialized_output) is True


@pytest.mark.parametrize("scope", [wf.PropagationScope.OWN_HISTORY, wf.PropagationScope.LINEAGE])
def test_a_retried_activity_gets_the_history_again(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, scope: wf.PropagationScope
) -> None:
    attempts: list[int] = []

    @runtime.activity
    def flaky(ctx: wf.WorkflowActivityContext, _: object) -> Any:
        history = ctx.get_propagated_history()
        assert history is not None
        attempts.append(len(history.get_workflows()[-1].get_activities_by_name("flaky")))
        if len(attempts) < 2:
            raise RuntimeError("first attempt fails")
        return attempts

    @runtime.workflow
    def retrying(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        policy = wf.RetryPolicy(
            first_retry_interval=timedelta(milliseconds=10), max_number_of_attempts=3
        )
        return (yield ctx.call_activity(flaky, retry_policy=policy, propagation=scope))

    state = finish(client, client.schedule_new_workflow(retrying))
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state.failure_details
    # the second attempt's history shows the first attempt (failed) and its own call
    assert decoded(state.serialized_output) == [1, 2]
