"""replay() of histories recorded before schema 9, when an activity call's timeout was a timer
(CreateTimer right after the ScheduleTask): the calls already made keep their timers, and the
code's later actions line up with history, whole or turn by turn.

``tests/histories/legacy_timeouts/*.json`` were recorded by the code of schema 8 running
``tests/e2e/legacy_timeouts_app.py`` (see ``tests/e2e/legacy_timeouts_old.py``); the other
histories here are written by hand the way that code recorded them.
"""

from __future__ import annotations

import importlib.util
import itertools
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from treadle.core import codec
from treadle.core.actions import CompleteOrchestration, ScheduleTask
from treadle.core.context import WorkflowContext
from treadle.core.history import (
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    TaskScheduled,
    TimerCreated,
)
from treadle.core.history_file import load_history
from treadle.core.replay import WorkflowExecution, replay
from treadle.core.tasks import when_all, when_any
from treadle.core.validation import default_child_id
from treadle.errors import TaskTimeoutError
from treadle.testing import Replayer

from .helpers import (
    INSTANCE,
    Workflow,
    at,
    child_completed,
    child_created,
    decoded_output,
    start,
    task_completed,
    task_scheduled,
    timer_created,
    timer_fired,
    turn,
)

TESTS = Path(__file__).resolve().parents[1]
SAVED = sorted((TESTS / "histories" / "legacy_timeouts").glob("*.json"))


def _app() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "legacy_timeouts_app", TESTS / "e2e" / "legacy_timeouts_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


app = _app()


def _saved(path: Path) -> tuple[Any, list[HistoryEvent]]:
    saved = load_history(path.read_text())
    workflow = next(w for w in app.WORKFLOWS if w.__name__ == saved.workflow)
    return workflow, list(saved.events)


# ---- histories the old code recorded ------------------------------------------------------
def test_every_workflow_has_a_saved_history() -> None:
    assert {p.stem for p in SAVED} == set(app.EXPECTED)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_a_saved_history_replays_to_its_result(path: Path) -> None:
    workflow, events = _saved(path)
    assert any(isinstance(e, TimerCreated) for e in events)
    result = replay(workflow, events, instance_id=workflow.__name__)
    assert result.status is OrchestrationStatus.COMPLETED, result.failure
    # the completion takes the id the old code recorded it with
    [completion] = result.actions
    assert completion.id == next(e.event_id for e in events if e.KIND == "ExecutionCompleted")
    assert codec.decode(result.output) == app.EXPECTED[workflow.__name__]
    report = Replayer(app.WORKFLOWS).replay(path.read_text())
    assert report.ok, report.divergence


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_upgraded_at_any_turn_the_ids_line_up_whole_or_turn_by_turn(path: Path) -> None:
    """Cut the history before each turn, as if the upgrade came there: the new code's actions
    for that turn come after every recorded id, and the same whether the run was rebuilt
    from the whole history or kept turn by turn."""
    workflow, events = _saved(path)
    starts = [i for i, e in enumerate(events) if isinstance(e, OrchestratorStarted)]
    for n, begin in enumerate(starts[1:], 1):
        incoming = [events[begin]]
        for event in events[begin + 1 :]:
            if isinstance(event, OrchestratorStarted | TaskScheduled | TimerCreated):
                break
            incoming.append(event)
        whole = replay(workflow, events[:begin], incoming, instance_id=workflow.__name__)
        kept = WorkflowExecution(workflow, instance_id=workflow.__name__)
        for first, end in itertools.pairwise(starts[: n + 1]):
            kept.process(events[first:end], replaying=True)
            kept.confirm_actions()
        kept.process(incoming, replaying=False)
        assert kept.take_actions() == whole.actions
        recorded = max(e.event_id for e in events[:begin])
        assert all(a.id > recorded for a in whole.actions)


def test_the_call_made_after_the_upgrade_takes_the_next_id() -> None:
    workflow, events = _saved(TESTS / "histories" / "legacy_timeouts" / "single.json")
    first_result = next(i for i, e in enumerate(events) if e.KIND == "TaskCompleted")
    history, incoming = events[: first_result - 1], events[first_result - 1 : first_result + 1]
    result = replay(workflow, history, incoming, instance_id="single")
    [call] = result.actions
    assert isinstance(call, ScheduleTask)
    assert (call.id, call.name, call.timeout) == (3, "quick", timedelta(seconds=30))
    assert call.task_execution_id.endswith(":3")


# ---- written by hand, as the old code recorded them -----------------------------------------
T = timedelta(seconds=30)


def _guarded(ctx: WorkflowContext, _: object) -> Workflow[Any]:
    call = ctx.call_activity("slow", timeout=T)
    winner = yield when_any([call, ctx.create_timer(T)])
    if winner is call:
        try:
            return f"activity: {call.get_result()}"
        except TaskTimeoutError:
            return "activity timed out"
    return "timer"


def test_a_timeout_timer_then_a_timer_of_the_code_at_the_same_time() -> None:
    old = [*start(), task_scheduled(1, "slow"), timer_created(2, at(30)), timer_created(3, at(30))]
    result = replay(_guarded, old, [turn(at(30)), timer_fired(2, at(30))], instance_id=INSTANCE)
    assert decoded_output(result) == "activity timed out"
    # a history of today: the code's timer right after the call, firing as its timeout would
    new = [*start(), task_scheduled(1, "slow"), timer_created(2, at(30))]
    result = replay(_guarded, new, [turn(at(30)), timer_fired(2, at(30))], instance_id=INSTANCE)
    assert decoded_output(result) == "timer"


def test_a_timeout_timer_then_a_timer_of_the_code_at_another_time() -> None:
    def guarded(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        call = ctx.call_activity("slow", timeout=T)
        winner = yield when_any([call, ctx.create_timer(timedelta(seconds=60))])
        return "activity" if winner is call else "timer"

    old = [*start(), task_scheduled(1, "slow"), timer_created(2, at(30)), timer_created(3, at(60))]
    execution = WorkflowExecution(guarded, instance_id=INSTANCE)
    execution.process(old, replaying=True)
    assert execution.take_actions() == []
    result = replay(guarded, old, [turn(at(60)), timer_fired(3, at(60))], instance_id=INSTANCE)
    assert decoded_output(result) == "timer"


def test_a_child_after_a_timed_call_keeps_the_id_it_was_started_with() -> None:
    def parent(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        results = yield when_all([ctx.call_activity("a", timeout=T), ctx.call_child_workflow("c")])
        return results

    child_id = default_child_id(INSTANCE, 3)
    old = [
        *start(),
        task_scheduled(1, "a"),
        timer_created(2, at(30)),
        child_created(3, "c", child_id),
    ]
    execution = WorkflowExecution(parent, instance_id=INSTANCE)
    execution.process(old, replaying=True)
    assert execution.child_instance_ids == [child_id]
    more = [turn(at(1)), task_completed(1, "x"), child_completed(3, "y")]
    assert decoded_output(replay(parent, old, more, instance_id=INSTANCE)) == ["x", "y"]


def test_the_timer_fails_the_attempt_at_the_time_it_recorded_whatever_the_code_says_now() -> None:
    def caller(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        try:  # (the old code said 30 s)
            return (yield ctx.call_activity("slow", timeout=timedelta(minutes=5)))
        except TaskTimeoutError as exc:
            return f"timed out: {exc}"

    old = [*start(), task_scheduled(1, "slow"), timer_created(2, at(30))]
    execution = WorkflowExecution(caller, instance_id=INSTANCE)
    execution.process(old, replaying=True)
    execution.confirm_actions()
    execution.process([turn(at(30)), timer_fired(2, at(30))], replaying=False)
    [completion] = execution.take_actions()
    assert isinstance(completion, CompleteOrchestration)
    assert completion.result is not None and "within its timeout of 0:00:30" in completion.result
    assert execution.timed_out_tasks == {1}
    late = [turn(at(31)), task_completed(1, "late")]
    assert execution.without_late_results(late) == late[:1]


def test_a_timer_the_code_did_not_make_after_an_untimed_call_is_still_non_determinism() -> None:
    def caller(ctx: WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.call_activity("slow"))

    old = [*start(), task_scheduled(1, "slow"), timer_created(2, at(30))]
    result = replay(caller, old, instance_id=INSTANCE)
    assert result.status is OrchestrationStatus.FAILED
    assert "step 2: history has TimerCreated()" in str(result.failure)
