"""Calls to another app that cannot take them fail, after a wait measured on a manual clock:
the app's heartbeats and sweeps move only when the test moves the clock."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import treadle as wf
from treadle.clock import ManualClock
from treadle.runtime.apps import HEARTBEAT_S, NAME_GRACE
from treadle.store.base import Store

from .helpers import Workflow, decoded, finish, status_of, waiting_reason

START = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
APP_WAIT = timedelta(seconds=30)
STILL_S = 0.3  # how long a negative check watches runtimes whose clock stands still


@pytest.fixture
def runtimes() -> Iterator[Callable[..., wf.WorkflowRuntime]]:
    """Makes runtimes, shut down at teardown."""
    made: list[wf.WorkflowRuntime] = []

    def make(store: Store, **options: Any) -> wf.WorkflowRuntime:
        runtime = wf.WorkflowRuntime(store, **options)
        made.append(runtime)
        return runtime

    yield make
    for runtime in reversed(made):
        runtime.shutdown(timeout=2)


def _caller(
    runtimes: Callable[..., wf.WorkflowRuntime], store: Store, clock: ManualClock, kind: str
) -> wf.WorkflowRuntime:
    """A runtime of app "orders" whose workflow ``order`` calls "charge" of app "billing" (an
    activity or a child workflow) and returns the failure it gets."""
    orders = runtimes(store, clock=clock, app_id="orders", app_wait=APP_WAIT)

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[list[str]]:
        call = ctx.call_activity if kind == "activity" else ctx.call_child_workflow
        try:
            yield call("charge", app_id="billing")
        except wf.TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message]
        return []

    return orders


def _step(clock: ManualClock, seconds: float) -> None:
    """Move the clock in heartbeats, letting the runtimes' threads act on each."""
    while seconds > 0:
        clock.advance(min(HEARTBEAT_S, seconds))
        seconds -= HEARTBEAT_S
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["activity", "child"])
def test_a_call_to_an_app_with_no_worker_fails_after_app_wait(
    make_store: Callable[..., Store],
    runtimes: Callable[..., wf.WorkflowRuntime],
    kind: str,
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    orders = _caller(runtimes, store, clock, kind)
    with orders, wf.WorkflowClient(store, app_id="orders") as client:
        iid = client.schedule_new_workflow("order")
        waiter = iid if kind == "activity" else f"{iid}:0001"
        _step(clock, APP_WAIT.total_seconds() - HEARTBEAT_S)
        assert "app 'billing' has no running worker" in waiting_reason(client, waiter)
        time.sleep(STILL_S)
        assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
        _step(clock, 2 * HEARTBEAT_S)
        state = finish(client, iid, timeout=5)
        child = client.get_workflow_state(f"{iid}:0001")
    error_type, message = decoded(state.serialized_output)
    assert error_type == "TimeoutError"
    assert "no worker of app 'billing'" in message and "within 30 s" in message
    if kind == "child":  # the child that never started failed, with the same reason
        assert child is not None and child.runtime_status is wf.WorkflowStatus.FAILED
        assert child.failure_details is not None
        assert child.failure_details.message == message


def test_a_call_to_a_running_app_that_lacks_it_fails_after_the_grace(
    make_store: Callable[..., Store], runtimes: Callable[..., wf.WorkflowRuntime]
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    orders = _caller(runtimes, store, clock, "activity")
    billing = runtimes(store, clock=clock, app_id="billing")
    billing.register_activity(lambda ctx, _: None, name="refund")
    with orders, billing, wf.WorkflowClient(store, app_id="orders") as client:
        iid = client.schedule_new_workflow("order")
        _step(clock, NAME_GRACE.total_seconds() + 2 * HEARTBEAT_S)
        state = finish(client, iid, timeout=5)
    error_type, message = decoded(state.serialized_output)
    assert error_type == "RegistrationError"
    assert "'charge' is not registered by any running worker of app 'billing'" in message


def test_a_call_within_one_app_waits_however_long(
    make_store: Callable[..., Store], runtimes: Callable[..., wf.WorkflowRuntime]
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    orders = runtimes(store, clock=clock, app_id="orders", app_wait=APP_WAIT)

    @orders.workflow
    def order(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_activity("charge"))

    with orders, wf.WorkflowClient(store, app_id="orders") as client:
        iid = client.schedule_new_workflow(order)
        clock.advance(6 * 3600)
        _step(clock, 2 * HEARTBEAT_S)
        assert "activity 'charge'" in waiting_reason(client, iid)
        assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
