"""Workflow code that never yields: a turn that runs past ``turn_timeout`` is interrupted,
its instance FAILED with ``TurnTimeout`` (and an error logged), and the runtime's other
workflows go on; a start returns once its instance is recorded, whatever its first turn
does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

import treadle as wf

from .helpers import Workflow, decoded, finish

LIMIT = timedelta(seconds=1)


def spin() -> None:
    """Run for ever without yielding (and shrug off the exceptions Exception catches)."""
    while True:
        try:
            while True:
                pass
        except Exception:
            pass


def test_a_turn_that_never_yields_fails_its_instance_and_others_go_on(
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = make_runtime(start=False, turn_timeout=LIMIT)

    @runtime.activity
    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n

    @runtime.workflow
    def spinner(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        yield ctx.call_activity(step, input=n)
        spin()
        return n

    @runtime.workflow
    def fine(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        total = 0
        for i in range(3):
            total += yield ctx.call_activity(step, input=n + i)
        return total

    runtime.start()
    with caplog.at_level(logging.ERROR, logger="treadle"):
        spinning = [client.schedule_new_workflow(spinner, input=n) for n in range(2)]
        fines = [client.schedule_new_workflow(fine, input=n) for n in range(5)]
        for n, iid in enumerate(fines):
            state = finish(client, iid, timeout=20)
            assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
            assert decoded(state.serialized_output) == 3 * n + 3
        for iid in spinning:
            state = finish(client, iid, timeout=20)
            assert state.runtime_status is wf.WorkflowStatus.FAILED, state
            assert state.failure_details is not None
            assert state.failure_details.error_type == "TurnTimeout"
            assert "ran longer than 1 s" in state.failure_details.message
            assert iid in state.failure_details.message
    logged = caplog.text
    for iid in spinning:
        assert f"workflow instance {iid!r}: a turn ran longer than 1 s" in logged
    # the runtime goes on afterwards
    after = finish(client, client.schedule_new_workflow(fine, input=10), timeout=20)
    assert after.runtime_status is wf.WorkflowStatus.COMPLETED


def test_a_start_returns_once_recorded_when_its_first_turn_never_yields(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    runtime = make_runtime(start=False, turn_timeout=timedelta(seconds=3))

    @runtime.workflow
    def spinner(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        spin()
        yield ctx.create_timer(timedelta(seconds=1))
        return n

    @runtime.workflow
    def fine(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        yield ctx.create_timer(timedelta(milliseconds=10))
        return n

    runtime.start()
    began = time.monotonic()
    iid = client.schedule_new_workflow(spinner, input=1)
    took = time.monotonic() - began
    # recorded: the start's first turn gave up after 1 s, not the 3 s turn limit
    assert took < 2.5, f"the start took {took:.2f} s"
    state = client.get_workflow_state(iid)
    assert state is not None
    assert state.runtime_status in (wf.WorkflowStatus.PENDING, wf.WorkflowStatus.RUNNING)
    ok = finish(client, client.schedule_new_workflow(fine, input=5), timeout=20)
    assert ok.runtime_status is wf.WorkflowStatus.COMPLETED
    failed = finish(client, iid, timeout=20)
    assert failed.runtime_status is wf.WorkflowStatus.FAILED
    assert failed.failure_details is not None
    assert failed.failure_details.error_type == "TurnTimeout"


def test_a_replay_that_never_ends_fails_its_instance(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    # the code changed under a running instance: its replay now spins (a cache miss after
    # a restart replays the history)
    first = make_runtime(start=False, turn_timeout=LIMIT)
    spinning = {"on": False}

    @first.workflow(name="flow")
    def flow(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        if spinning["on"]:
            spin()
        value: int = yield ctx.wait_for_external_event("go")
        return value

    first.start()
    iid = client.schedule_new_workflow(flow, input=1)
    client.wait_for_workflow_start(iid, timeout_in_seconds=10)
    first.shutdown(timeout=2)
    spinning["on"] = True
    second = make_runtime(start=False, turn_timeout=LIMIT)
    second.register_workflow(flow, name="flow")
    second.start()
    client.raise_workflow_event(iid, "go", data=7)
    state = finish(client, iid, timeout=20)
    assert state.runtime_status is wf.WorkflowStatus.FAILED, state
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TurnTimeout"


def test_turn_timeout_is_validated() -> None:
    with pytest.raises(ValueError, match="turn_timeout"):
        wf.WorkflowRuntime("sqlite://", turn_timeout=timedelta(0))
    with pytest.raises(ValueError, match="turn_timeout"):
        wf.WorkflowRuntime("sqlite://", turn_timeout=5)  # type: ignore[arg-type]


def test_a_turn_limit_above_half_the_lease_still_fails_the_spinner(
    make_runtime: Callable[..., wf.WorkflowRuntime], client: wf.WorkflowClient
) -> None:
    """A turn_timeout as long as the lease: the watchdog interrupts at half the lease, while
    the lease still holds. (Interrupted after the lease ran out, the failure was fenced out,
    and the instance was claimed and spun again for ever, starving every other workflow.)"""
    runtime = make_runtime(start=False, turn_timeout=timedelta(seconds=2), lease_s=2.0)

    @runtime.activity
    def step(ctx: wf.WorkflowActivityContext, n: int) -> int:
        return n

    @runtime.workflow
    def spinner(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        yield ctx.call_activity(step, input=n)
        spin()
        return n

    @runtime.workflow
    def fine(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
        got: int = yield ctx.call_activity(step, input=n)
        return got

    runtime.start()
    spinning = client.schedule_new_workflow(spinner, input=1)
    fines = [client.schedule_new_workflow(fine, input=n) for n in range(3)]
    for n, iid in enumerate(fines):
        state = finish(client, iid, timeout=20)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, state
        assert decoded(state.serialized_output) == n
    state = finish(client, spinning, timeout=20)
    assert state.runtime_status is wf.WorkflowStatus.FAILED, state
    assert state.failure_details is not None
    assert state.failure_details.error_type == "TurnTimeout"
    assert "ran longer than 1 s" in state.failure_details.message
