"""History propagation in the core: the calls that ask for it, what is assembled, and the
query API the callee reads it with (the Dapr SDK's)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from treadle.core import codec
from treadle.core.actions import CreateSubOrchestration, ScheduleTask
from treadle.core.context import WorkflowActivityContext, WorkflowContext
from treadle.core.history import (
    ExecutionStarted,
    HistoryEvent,
    PropagatedChunk,
    Propagation,
    SubOrchestrationInstanceCreated,
    TaskScheduled,
)
from treadle.core.propagation import (
    ActivityResult,
    ChildWorkflowResult,
    PropagatedHistory,
    PropagationScope,
    assemble,
    carried_over,
)
from treadle.core.replay import replay
from treadle.core.retry import RetryPolicy
from treadle.errors import PropagationNotFoundError

from .helpers import (
    INSTANCE,
    Run,
    Workflow,
    at,
    child_completed,
    child_created,
    start,
    task_completed,
    task_failed,
    task_scheduled,
    timer_fired,
    turn,
    workflow_started,
)


def checkout(ctx: WorkflowContext, merchant: str) -> Workflow[Any]:
    yield ctx.call_activity("validate", input=merchant)
    paid = yield ctx.call_child_workflow(
        "pay", input=None, instance_id="pay-1", propagation=PropagationScope.OWN_HISTORY
    )
    audit = yield ctx.call_activity("audit", propagation=PropagationScope.LINEAGE)
    return [paid, audit]


def test_calls_record_the_scope_in_their_actions_and_events() -> None:
    run = Run(checkout, "m-42")
    assert run.actions[0].propagation_scope == 0
    [child] = run.turn(task_completed(1, {"ok": True}))
    assert isinstance(child, CreateSubOrchestration)
    assert child.propagation_scope == PropagationScope.OWN_HISTORY.value
    [audit] = run.turn(child_completed(2, "paid"))
    assert isinstance(audit, ScheduleTask)
    assert audit.propagation_scope == PropagationScope.LINEAGE.value
    created = next(e for e in run.history if isinstance(e, SubOrchestrationInstanceCreated))
    assert created.propagation_scope == 1
    scheduled = [e for e in run.history if isinstance(e, TaskScheduled)]
    assert [e.propagation_scope for e in scheduled] == [0, 2]


def test_a_retried_call_keeps_its_scope() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)

    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (
            yield ctx.call_activity(
                "flaky", retry_policy=policy, propagation=PropagationScope.OWN_HISTORY
            )
        )

    run = Run(wf)
    [timer] = run.turn(task_failed(1))
    [again] = run.turn(timer_fired(timer.id, timer.fire_at), when=at(1))
    assert isinstance(again, ScheduleTask)
    assert again.propagation_scope == PropagationScope.OWN_HISTORY.value


def test_propagation_must_be_a_scope() -> None:
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("a", propagation=1))  # type: ignore[arg-type]

    result = replay(wf, start())
    assert isinstance(result.failure, TypeError)
    assert "PropagationScope" in str(result.failure)


def _parent_events() -> list[HistoryEvent]:
    return [
        *start("checkout", "m-42"),
        task_scheduled(1, "validate", "m-42"),
        turn(),
        task_completed(1, {"merchant_id": "m-42", "valid": True}),
        child_created(2, "pay", "pay-1"),
    ]


def test_own_history_is_the_callers_events_tagged_with_its_app_instance_and_name() -> None:
    events = _parent_events()
    stored = assemble(1, own_events=events, received=None, app_id="shop", instance_id=INSTANCE)
    assert stored == Propagation(
        scope=1, chunks=(PropagatedChunk("shop", INSTANCE, "checkout", tuple(events)),)
    )
    assert assemble(0, own_events=events, received=None, app_id="a", instance_id="i") is None


def test_lineage_keeps_what_the_caller_received_and_own_history_drops_it() -> None:
    ancestor = PropagatedChunk("root-app", "root-1", "root", tuple(start("root")))
    received = Propagation(scope=2, chunks=(ancestor,))
    started = dataclasses.replace(workflow_started("mid"), propagated=received)
    own = [turn(), started, task_scheduled(1, "audit")]
    lineage = assemble(2, own_events=own, received=received, app_id="b", instance_id="mid-1")
    assert lineage is not None
    assert [c.instance_id for c in lineage.chunks] == ["root-1", "mid-1"]
    # what it received is not nested again in its own chunk's ExecutionStarted
    mine = lineage.chunks[-1]
    assert mine.workflow_name == "mid"
    assert all(e.propagated is None for e in mine.events if isinstance(e, ExecutionStarted))
    own_only = assemble(1, own_events=own, received=received, app_id="b", instance_id="mid-1")
    assert own_only is not None
    assert [c.instance_id for c in own_only.chunks] == ["mid-1"]


def test_a_run_that_received_nothing_carries_nothing_over() -> None:
    events = _parent_events()
    assert carried_over(None, own_events=events, app_id="a", instance_id="i") is None
    received = Propagation(scope=1, chunks=(PropagatedChunk("p", "p-1", "parent", ()),))
    carried = carried_over(received, own_events=events, app_id="a", instance_id="i")
    # the scope it was given: OWN_HISTORY keeps only this run's own events
    assert carried is not None
    assert carried.scope == 1
    assert [c.instance_id for c in carried.chunks] == ["i"]


def _history() -> PropagatedHistory:
    ancestor = PropagatedChunk(
        "root-app",
        "root-1",
        "root",
        (*start("root"), task_scheduled(1, "validate", "first")),
    )
    parent = PropagatedChunk(
        "shop",
        "p-1",
        "checkout",
        (
            *start("checkout"),
            task_scheduled(1, "validate", "a"),
            task_completed(1, "A"),
            task_scheduled(2, "validate", "b"),
            task_failed(2, "nope"),
            child_created(3, "pay", "pay-1", 5),
            child_completed(3, "paid"),
            child_created(4, "pay", "pay-2"),
        ),
    )
    stored = Propagation(scope=2, chunks=(ancestor, parent))
    return PropagatedHistory.from_propagation(stored)


def test_workflows_come_oldest_ancestor_first() -> None:
    history = _history()
    assert history.scope is PropagationScope.LINEAGE
    assert [(w.app_id, w.instance_id, w.name) for w in history.get_workflows()] == [
        ("root-app", "root-1", "root"),
        ("shop", "p-1", "checkout"),
    ]
    assert history.get_app_ids() == ["root-app", "shop"]
    assert len(history.events) == 3 + 9
    assert history.get_events_by_app_id("shop") == history.get_events_by_instance_id("p-1")
    assert len(history.get_events_by_workflow_name("root")) == 3
    assert history.get_last_workflow_by_name("checkout").instance_id == "p-1"
    assert history.get_workflows_by_name("nope") == []
    with pytest.raises(PropagationNotFoundError, match="no workflow named 'nope'"):
        history.get_last_workflow_by_name("nope")


def test_activities_and_children_are_resolved_from_their_results() -> None:
    parent = _history().get_last_workflow_by_name("checkout")
    first, second = parent.get_activities_by_name("validate")
    assert first == ActivityResult(
        name="validate",
        started=True,
        completed=True,
        failed=False,
        input='"a"',
        output='"A"',
        error=None,
    )
    assert second.failed and not second.completed
    assert second.error is not None and second.error.message == "nope"
    assert parent.get_last_activity_by_name("validate") == second
    assert parent.get_last_child_workflow_by_name("pay") == ChildWorkflowResult(
        name="pay", started=True, completed=False, failed=False, output=None, error=None
    )
    assert parent.get_child_workflows_by_name("pay")[0].output == '"paid"'
    with pytest.raises(PropagationNotFoundError, match="no activity named 'ship'"):
        parent.get_last_activity_by_name("ship")
    with pytest.raises(PropagationNotFoundError, match="no child workflow named 'ship'"):
        parent.get_last_child_workflow_by_name("ship")


def test_a_child_reads_the_history_its_start_carries() -> None:
    seen: list[Any] = []

    def pay(ctx: WorkflowContext, _: object) -> str:
        history = ctx.get_propagated_history()
        if history is None:
            return "none"
        validate = history.get_workflows()[-1].get_last_activity_by_name("validate")
        seen.append(codec.decode(validate.output))
        return "paid"

    stored = assemble(
        1, own_events=_parent_events(), received=None, app_id="shop", instance_id="p-1"
    )
    started = dataclasses.replace(workflow_started("pay"), propagated=stored)
    result = replay(pay, [turn(), started])
    assert codec.decode(result.output) == "paid"
    assert seen == [{"merchant_id": "m-42", "valid": True}]
    assert codec.decode(replay(pay, start("pay")).output) == "none"


def test_an_activity_context_reads_its_propagated_history() -> None:
    stored = assemble(
        2, own_events=_parent_events(), received=None, app_id="shop", instance_id="p-1"
    )
    ctx = WorkflowActivityContext("p-1", 3, "e:3", "audit", propagated=stored)
    history = ctx.get_propagated_history()
    assert history is not None
    assert history.get_workflows()[-1].get_last_activity_by_name("validate").completed
    assert WorkflowActivityContext("p-1", 3, "e:3").get_propagated_history() is None
