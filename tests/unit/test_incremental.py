"""WorkflowExecution fed turn by turn gives the same actions as a full replay.

The runtime keeps executions cached between turns and only replays after a cache miss, so
the two paths must never disagree.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from treadle.core.actions import ScheduleTask, action_to_event
from treadle.core.context import WorkflowContext
from treadle.core.history import HistoryEvent
from treadle.core.replay import WorkflowExecution, replay
from treadle.core.retry import RetryPolicy
from treadle.core.tasks import when_all, when_any
from treadle.errors import TaskFailedError

from .helpers import (
    INSTANCE,
    Workflow,
    assert_same_actions,
    at,
    event_raised,
    task_completed,
    task_failed,
    task_scheduled,
    timer_fired,
    turn,
    workflow_started,
)


def order(ctx: WorkflowContext, items: list[str]) -> Workflow[list[Any]]:
    reserved = yield when_all([ctx.call_activity("reserve", input=i) for i in items])
    approval = ctx.wait_for_external_event("approve", timeout=timedelta(hours=1))
    try:
        who = yield approval
    except TimeoutError:
        who = None
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=2), max_number_of_attempts=3)
    try:
        receipt = yield ctx.call_activity("charge", input=who, retry_policy=policy)
    except TaskFailedError:
        receipt = "unpaid"
    ctx.set_custom_status("charged")
    yield ctx.create_timer(timedelta(minutes=1))
    return [reserved, who, receipt]


def test_step_by_step_process_matches_full_replay() -> None:
    execution = WorkflowExecution(order, instance_id=INSTANCE)
    history: list[HistoryEvent] = []
    turns = [
        ([turn(at(0)), workflow_started(input=["x", "y"])], ["ScheduleTask", "ScheduleTask"]),
        ([turn(at(1)), task_completed(2, "Y")], []),
        ([turn(at(2)), task_completed(1, "X")], ["CreateTimer"]),  # the approval timeout
        ([turn(at(3)), event_raised("APPROVE", "ann")], ["ScheduleTask"]),
        ([turn(at(4)), task_failed(4, "declined")], ["CreateTimer"]),  # retry backoff
        ([turn(at(6)), timer_fired(5, at(6))], ["ScheduleTask"]),
        ([turn(at(7)), task_completed(6, "r-1")], ["CreateTimer"]),
        ([turn(at(3602)), timer_fired(3, at(3602))], []),  # the stale approval timeout
        ([turn(at(3603)), timer_fired(7, at(67))], ["CompleteOrchestration"]),
    ]
    for batch, kinds in turns:
        full = replay(order, history, batch, instance_id=INSTANCE)
        execution.process(batch, replaying=False)
        actions = execution.take_actions()
        assert execution.take_actions() == actions  # taking does not consume
        execution.confirm_actions()
        assert execution.take_actions() == []
        assert_same_actions(actions, full.actions)
        assert [type(a).__name__ for a in actions] == kinds
        assert execution.custom_status == full.custom_status
        history += batch + [e for a in actions if (e := action_to_event(a)) is not None]
    assert execution.is_complete
    final = replay(order, history, instance_id=INSTANCE)
    assert final.output == '[["X","Y"],"ann","r-1"]'
    assert final.custom_status == '"charged"'


def test_retry_keeps_the_same_task_execution_id_across_the_incremental_path() -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=2)

    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("a", retry_policy=policy))

    execution = WorkflowExecution(wf, instance_id=INSTANCE)
    execution.process([turn(), workflow_started()], replaying=False)
    [first] = execution.take_actions()
    execution.confirm_actions()
    execution.process([turn(at(1)), task_failed(1)], replaying=False)
    execution.confirm_actions()
    execution.process([turn(at(2)), timer_fired(2, at(2))], replaying=False)
    [second] = execution.take_actions()
    assert isinstance(first, ScheduleTask) and isinstance(second, ScheduleTask)
    assert second.id == 3
    assert second.task_execution_id == first.task_execution_id != ""


# A generated interleaving: a race of activities and events, arbitrary arrival order and
# batching. Whatever arrives when, the cached path and replay agree at every turn.
def racer(ctx: WorkflowContext, _: object) -> Workflow[list[Any]]:
    acts = [ctx.call_activity("act", input=i) for i in range(3)]
    first = yield when_any([*acts, ctx.wait_for_external_event("go")])
    rest = yield when_all(acts)
    second = yield ctx.wait_for_external_event("go")
    return [first.get_result(), rest, second]


_ARRIVALS: list[HistoryEvent] = [
    task_completed(1, "a"),
    task_completed(2, "b"),
    task_completed(3, "c"),
    event_raised("go", 1),
    event_raised("go", 2),
    task_completed(2, "dup"),
]


@settings(max_examples=60)
@given(order=st.permutations(range(len(_ARRIVALS))), cuts=st.sets(st.integers(1, 5)))
def test_any_arrival_order_and_batching_agrees_with_replay(
    order: list[int], cuts: set[int]
) -> None:
    events = [_ARRIVALS[i] for i in order]
    bounds = [0, *sorted(cuts), len(events)]
    batches = [events[a:b] for a, b in itertools.pairwise(bounds)]
    execution = WorkflowExecution(racer, instance_id=INSTANCE)
    history: list[HistoryEvent] = []
    first: list[HistoryEvent] = [workflow_started()]
    for batch in [first, *batches]:
        if execution.is_complete:
            break
        events_in = [turn(), *batch]
        full = replay(racer, history, events_in, instance_id=INSTANCE)
        execution.process(events_in, replaying=False)
        actions = execution.take_actions()
        execution.confirm_actions()
        assert_same_actions(actions, full.actions)
        history += events_in + [e for a in actions if (e := action_to_event(a)) is not None]
    assert execution.is_complete


def test_rebuilding_from_history_then_continuing_incrementally() -> None:
    # After a cache miss the runtime rebuilds from history (replaying=True), then keeps
    # feeding the same execution new turns.
    def wf(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        a = yield ctx.call_activity("a")
        ctx.logger.info("got %s", a)
        return (yield ctx.call_activity("b", input=a))

    execution = WorkflowExecution(wf, instance_id=INSTANCE)
    execution.process([turn(), workflow_started(), task_scheduled(1, "a")], replaying=True)
    assert execution.is_replaying is False
    assert execution.take_actions() == []
    execution.process([turn(), task_completed(1, 5)], replaying=False)
    [action] = execution.take_actions()
    assert isinstance(action, ScheduleTask) and (action.id, action.input) == (2, "5")
