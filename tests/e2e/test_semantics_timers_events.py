"""Durable timers and external events: buffering, names, order, payloads, timeouts, races."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

import treadle as wf

from .helpers import Gate, Workflow, decoded, events_of, finish, kinds, wait_until


def _waiting_for_event(client: wf.WorkflowClient, iid: str) -> bool:
    """The instance has run its first turn (it is past ExecutionStarted)."""
    return "ExecutionStarted" in kinds(client, iid)


def test_durable_timer_advances_the_workflow_clock(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    delay = timedelta(milliseconds=300)

    @runtime.workflow
    def sleeper(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any]]:
        before = ctx.current_utc_datetime
        yield ctx.create_timer(delay)
        after = ctx.current_utc_datetime
        return [before.isoformat(), after.isoformat()]

    started = time.monotonic()
    iid = client.schedule_new_workflow(sleeper)
    state = finish(client, iid)
    elapsed = time.monotonic() - started

    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    before, after = (datetime.fromisoformat(t) for t in decoded(state.serialized_output))
    assert after - before >= delay
    assert elapsed >= delay.total_seconds()
    [created] = events_of(client, iid, "TimerCreated")
    [fired] = events_of(client, iid, "TimerFired")
    assert created.fire_at == before + delay
    assert fired.timer_id == created.event_id
    assert fired.fire_at == created.fire_at


def test_timers_fire_on_time_one_after_another(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    """The runtime wakes for the timers it sets itself, without waiting for its
    once-a-second look at the store (five timers would then take about five seconds)."""

    @runtime.workflow
    def ticker(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        for _ in range(n):
            yield ctx.create_timer(timedelta(milliseconds=100))
        return n

    started = time.monotonic()
    state = finish(client, client.schedule_new_workflow(ticker, input=5))
    elapsed = time.monotonic() - started
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert 0.5 <= elapsed < 2.5


def test_event_raised_before_the_workflow_waits_is_buffered(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()

    @runtime.activity
    def prepare(ctx: wf.WorkflowActivityContext, _: object) -> str:
        gate.hold()
        return "prepared"

    @runtime.workflow
    def approval(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any]]:
        prepared = yield ctx.call_activity(prepare)
        answer = yield ctx.wait_for_external_event("approval")
        return [prepared, answer]

    iid = client.schedule_new_workflow(approval)
    gate.wait_entered()
    # the workflow is inside `prepare`, not yet waiting: the event must be kept for it
    client.raise_workflow_event(iid, "approval", data={"by": "alice"})
    wait_until(lambda: "EventRaised" in kinds(client, iid), what="the event in history")
    gate.open()
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert decoded(state.serialized_output) == ["prepared", {"by": "alice"}]


def test_event_raised_to_a_waiting_workflow(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def approval(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("approval"))

    iid = client.schedule_new_workflow(approval)
    wait_until(lambda: _waiting_for_event(client, iid))
    client.raise_workflow_event(iid, "approval", data="yes")
    assert decoded(finish(client, iid).serialized_output) == "yes"


def test_raising_to_an_unknown_instance_is_workflow_not_found(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    with pytest.raises(wf.WorkflowNotFoundError, match="'nobody-here'"):
        client.raise_workflow_event("nobody-here", "approval", data=1)


def test_event_names_are_case_insensitive(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def approval(ctx: wf.WorkflowContext, _: object) -> Workflow[list[Any]]:
        first = yield ctx.wait_for_external_event("Approval")
        second = yield ctx.wait_for_external_event("approval")
        return [first, second]

    iid = client.schedule_new_workflow(approval)
    wait_until(lambda: _waiting_for_event(client, iid))
    client.raise_workflow_event(iid, "APPROVAL", data=1)
    client.raise_workflow_event(iid, "aPpRoVaL", data=2)
    assert decoded(finish(client, iid).serialized_output) == [1, 2]


def test_events_of_one_name_are_delivered_in_order(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient, gates: Callable[[], Gate]
) -> None:
    gate = gates()

    @runtime.activity
    def prepare(ctx: wf.WorkflowActivityContext, _: object) -> None:
        gate.hold()

    @runtime.workflow
    def collect(ctx: wf.WorkflowContext, n: int) -> Workflow[list[Any]]:
        yield ctx.call_activity(prepare)
        items: list[Any] = []
        for _ in range(n):
            items.append((yield ctx.wait_for_external_event("item")))
        return items

    iid = client.schedule_new_workflow(collect, input=10)
    gate.wait_entered()
    for i in range(5):  # buffered: raised before the workflow waits
        client.raise_workflow_event(iid, "item", data=i)
    gate.open()
    for i in range(5, 10):  # raised while it waits, quicker than it takes them
        client.raise_workflow_event(iid, "item", data=i)
    assert decoded(finish(client, iid).serialized_output) == list(range(10))


def test_waiters_of_one_name_are_served_in_order(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def pair(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        first = ctx.wait_for_external_event("item")
        second = ctx.wait_for_external_event("item")
        return (yield wf.when_all([second, first]))

    iid = client.schedule_new_workflow(pair)
    wait_until(lambda: _waiting_for_event(client, iid))
    client.raise_workflow_event(iid, "item", data="a")
    client.raise_workflow_event(iid, "item", data="b")
    assert decoded(finish(client, iid).serialized_output) == ["b", "a"]


FALSY = [0, "", {}, [], False, 0.0]


def test_falsy_payloads_and_none_are_delivered_as_sent(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    names = [f"e{i}" for i in range(len(FALSY))]

    @runtime.workflow
    def receive(ctx: wf.WorkflowContext, _: object) -> Workflow[list[list[str]]]:
        seen: list[list[str]] = []
        for name in [*names, "none"]:
            value = yield ctx.wait_for_external_event(name)
            seen.append([repr(value), type(value).__name__])
        return seen

    iid = client.schedule_new_workflow(receive)
    wait_until(lambda: _waiting_for_event(client, iid))
    for name, value in zip(names, FALSY, strict=True):
        client.raise_workflow_event(iid, name, data=value)
    client.raise_workflow_event(iid, "none", data=None)
    seen = decoded(finish(client, iid).serialized_output)
    expected = [[repr(v), type(v).__name__] for v in [*FALSY, None]]
    assert seen == expected


def test_wait_for_event_with_timeout_raises_timeout_error(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def impatient(ctx: wf.WorkflowContext, _: object) -> Workflow[list[str] | str]:
        try:
            yield ctx.wait_for_external_event("approval", timeout=timedelta(milliseconds=200))
        except TimeoutError as e:
            return ["timeout", str(e)]
        return "not reached"

    iid = client.schedule_new_workflow(impatient)
    state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    outcome, message = decoded(state.serialized_output)
    assert outcome == "timeout"
    assert "approval" in message
    assert "TimerFired" in kinds(client, iid)


def test_wait_for_event_with_timeout_gets_an_early_event(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def patient(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("approval", timeout=timedelta(seconds=30)))

    iid = client.schedule_new_workflow(patient)
    wait_until(lambda: "TimerCreated" in kinds(client, iid))
    client.raise_workflow_event(iid, "approval", data="ok")
    assert decoded(finish(client, iid).serialized_output) == "ok"


def test_uncaught_event_timeout_fails_the_instance(
    runtime: wf.WorkflowRuntime, client: wf.WorkflowClient
) -> None:
    @runtime.workflow
    def impatient(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.wait_for_external_event("approval", timeout=timedelta(milliseconds=100))

    state = finish(client, client.schedule_new_workflow(impatient))
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TimeoutError"


def _register_race(runtime: wf.WorkflowRuntime) -> None:
    @runtime.workflow
    def race(ctx: wf.WorkflowContext, timeout_ms: int) -> Workflow[list[Any]]:
        approval = ctx.wait_for_external_event("approval")
        timer = ctx.create_timer(timedelta(milliseconds=timeout_ms))
        winner = yield wf.when_any([approval, timer])
        if winner is approval:
            return ["event", approval.get_result()]
        return ["timer", None]


def test_when_any_event_beats_timer(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    _register_race(runtime)
    iid = client.schedule_new_workflow("race", input=30_000)
    wait_until(lambda: "TimerCreated" in kinds(client, iid))
    client.raise_workflow_event(iid, "approval", data="approved")
    state = finish(client, iid)
    assert decoded(state.serialized_output) == ["event", "approved"]
    assert "TimerFired" not in kinds(client, iid)


def test_when_any_timer_beats_event(runtime: wf.WorkflowRuntime, client: wf.WorkflowClient) -> None:
    _register_race(runtime)
    iid = client.schedule_new_workflow("race", input=200)
    state = finish(client, iid)
    assert decoded(state.serialized_output) == ["timer", None]
    assert "EventRaised" not in kinds(client, iid)
