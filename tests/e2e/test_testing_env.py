"""The time-skipping test environment: real runtime, memory store, virtual clock.

Every test here runs workflows whose timers and retries span hours to months; the virtual
clock jumps over them, so each test takes milliseconds of real time, and the virtual times
the workflows see are the same on every run.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

import treadle as wf
from treadle.testing import DEFAULT_START, Replayer, WorkflowTestEnvironment

from .helpers import Workflow, wait_until

RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(hours=1), max_number_of_attempts=4, backoff_coefficient=2.0
)


def charge(ctx: wf.WorkflowActivityContext, amount: int) -> str:
    return f"charged {amount}"


def order(ctx: wf.DaprWorkflowContext, amount: int) -> Workflow[dict[str, Any]]:
    yield ctx.create_timer(timedelta(days=30))
    receipt = yield ctx.call_activity(charge, input=amount, retry_policy=RETRY)
    return {"receipt": receipt, "at": ctx.current_utc_datetime.isoformat()}


def approval(ctx: wf.DaprWorkflowContext, _: Any) -> Workflow[str]:
    approved = ctx.wait_for_external_event("approve")
    expired = ctx.create_timer(timedelta(days=3))
    winner = yield wf.when_any([approved, expired])
    if winner is expired:
        return f"expired at {ctx.current_utc_datetime.isoformat()}"
    return f"approved by {approved.get_result()} at {ctx.current_utc_datetime.isoformat()}"


def waits_for_ever(ctx: wf.DaprWorkflowContext, _: Any) -> Workflow[Any]:
    return (yield ctx.wait_for_external_event("never"))


def ticks(ctx: wf.DaprWorkflowContext, count: int) -> Workflow[list[str]]:
    seen = []
    for _ in range(count):
        yield ctx.create_timer(timedelta(hours=6))
        seen.append(ctx.current_utc_datetime.isoformat())
    return seen


def test_the_documented_shape_a_30_day_timer_and_hour_long_backoffs_in_milliseconds() -> None:
    attempts: list[str] = []

    def flaky(ctx: wf.WorkflowActivityContext, amount: int) -> str:
        attempts.append(ctx.task_execution_id)
        if len(attempts) < 3:
            raise ConnectionError("card processor unavailable")
        return f"charged {amount}"

    started = time.monotonic()
    with WorkflowTestEnvironment() as env:
        env.register_workflow(order)
        env.register_activity(charge)
        env.replace_activity(charge, flaky)
        iid = env.client.schedule_new_workflow(order, input=42)
        state = env.client.wait_for_workflow_completion(iid)
        history = env.client.export_workflow_history(iid)
    elapsed = time.monotonic() - started
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    # 30 days, then retries after 1 h and 2 h: exactly, on the virtual clock
    done_at = DEFAULT_START + timedelta(days=30, hours=3)
    assert state.serialized_output == (f'{{"receipt":"charged 42","at":"{done_at.isoformat()}"}}')
    assert len(attempts) == 3
    assert elapsed < 10, f"took {elapsed:.1f} s of real time"
    result = Replayer([order]).replay(history)
    assert result.ok, result.divergence


def test_fakes_are_per_environment() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(order)
        env.replace_activity("charge", lambda ctx, amount: f"faked {amount}")
        iid = env.client.schedule_new_workflow(order, input=7)
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and '"receipt":"faked 7"' in (state.serialized_output or "")
    with WorkflowTestEnvironment() as env:
        env.register_workflow(order)
        env.register_activity(charge)
        iid = env.client.schedule_new_workflow(order, input=7)
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and '"receipt":"charged 7"' in (state.serialized_output or "")


@pytest.mark.parametrize(
    ("raise_after", "expected"),
    [
        (timedelta(days=2), "approved by alice at 2030-01-03T00:00:00+00:00"),
        (timedelta(days=4), "expired at 2030-01-04T00:00:00+00:00"),
    ],
    ids=["in-time", "too-late"],
)
def test_events_raised_at_chosen_virtual_times(raise_after: timedelta, expected: str) -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(approval)
        iid = env.client.schedule_new_workflow(approval)
        env.raise_event_at(raise_after, iid, "approve", data="alice")
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and state.serialized_output == f'"{expected}"'


def test_sleep_advances_the_clock_firing_the_timers_due_meanwhile() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(ticks)
        iid = env.client.schedule_new_workflow(ticks, input=4)
        env.client.wait_for_workflow_start(iid)
        env.sleep(timedelta(hours=13))  # two ticks of four: at 6 h and 12 h
        assert env.now() == DEFAULT_START + timedelta(hours=13)
        state = env.client.get_workflow_state(iid)
        assert state is not None and state.runtime_status is wf.WorkflowStatus.RUNNING
        history = env.client.get_workflow_history(iid)
        assert sum(e.KIND == "TimerFired" for e in history) == 2
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
    hours = [6, 12, 18, 24]
    assert state.serialized_output == (
        "[" + ",".join(f'"{(DEFAULT_START + timedelta(hours=h)).isoformat()}"' for h in hours) + "]"
    )


def test_time_stands_still_while_the_test_does_not_wait() -> None:
    with WorkflowTestEnvironment(start=datetime(2040, 2, 3, tzinfo=timezone.utc)) as env:
        env.register_workflow(ticks)
        iid = env.client.schedule_new_workflow(ticks, input=1)
        env.client.wait_for_workflow_start(iid)
        assert env.now() == datetime(2040, 2, 3, tzinfo=timezone.utc)
        state = env.client.wait_for_workflow_completion(iid)
        assert env.now() == datetime(2040, 2, 3, 6, tzinfo=timezone.utc)
    assert state is not None and state.serialized_output == '["2040-02-03T06:00:00+00:00"]'


def test_a_wait_for_what_nothing_will_bring_fails_at_once_saying_so() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(waits_for_ever)
        iid = env.client.schedule_new_workflow(waits_for_ever)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="nothing is left to happen") as caught:
            env.client.wait_for_workflow_completion(iid)
        assert f"instance {iid!r} to finish" in str(caught.value)
        assert time.monotonic() - started < 10
        assert env.client.wait_for_workflow_completion("nobody") is None
        env.client.raise_workflow_event(iid, "never", data="came")
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and state.serialized_output == '"came"'


def test_a_wait_ends_at_its_real_time_limit_naming_the_virtual_time() -> None:
    release: list[bool] = []

    def slow(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        deadline = time.monotonic() + 10
        while not release and time.monotonic() < deadline:
            time.sleep(0.01)
        return "done"

    def calls_slow(ctx: wf.DaprWorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_activity(slow))

    with WorkflowTestEnvironment() as env:
        env.register_workflow(calls_slow)
        env.register_activity(slow)
        iid = env.client.schedule_new_workflow(calls_slow)
        with pytest.raises(TimeoutError, match=r"waited 0\.2 s \(real time\)") as caught:
            env.client.wait_for_workflow_completion(iid, timeout_in_seconds=0.2)
        assert "work is still running" in str(caught.value)
        assert env.now() == DEFAULT_START  # nothing skipped while the activity ran
        release.append(True)
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None and state.serialized_output == '"done"'


def test_child_workflows_and_parallel_timers_skip_too() -> None:
    def child(ctx: wf.DaprWorkflowContext, days: int) -> Workflow[str]:
        yield ctx.create_timer(timedelta(days=days))
        return ctx.current_utc_datetime.date().isoformat()

    def parent(ctx: wf.DaprWorkflowContext, _: Any) -> Workflow[Any]:
        return (yield wf.when_all([ctx.call_child_workflow(child, input=d) for d in (9, 1, 5)]))

    with WorkflowTestEnvironment() as env:
        env.register_workflow(parent)
        env.register_workflow(child)
        iid = env.client.schedule_new_workflow(parent)
        state = env.client.wait_for_workflow_completion(iid)
    assert state is not None
    assert state.serialized_output == '["2030-01-10","2030-01-02","2030-01-06"]'


def ship_v1(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[Any]:
    packed = yield ctx.call_activity("pack", input=item)
    if ctx.is_patched("insure"):
        yield ctx.call_activity("insure", input=item)
    yield ctx.create_timer(timedelta(days=2))
    return packed


def ship_v2(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[Any]:
    return (yield ctx.call_activity("pack", input=item))


def test_a_versioned_run_replays_with_the_versions_and_patches_it_recorded() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_versioned_workflow(ship_v1, name="ship", version_name="v1", is_latest=True)
        env.replace_activity("pack", lambda ctx, item: f"packed {item}")
        env.replace_activity("insure", lambda ctx, item: None)
        iid = env.client.schedule_new_workflow("ship", input="lamp")
        state = env.client.wait_for_workflow_completion(iid)
        assert state is not None and state.serialized_output == '"packed lamp"'
        saved = env.client.export_workflow_history(iid)
        result = Replayer(env.runtime).replay(saved)  # the runtime's own registrations
        assert result.ok, result.divergence
        # the next release: v2 is the latest, v1 kept for the instances that run it
        env.register_versioned_workflow(ship_v2, name="ship", version_name="v2", is_latest=True)
        result = Replayer(env.runtime).replay(saved)
        assert result.ok, result.divergence

    with WorkflowTestEnvironment() as env:  # a release that dropped v1 too early
        env.register_versioned_workflow(ship_v2, name="ship", version_name="v2", is_latest=True)
        result = Replayer(env.runtime).replay(saved)
    assert result.divergence is not None
    assert result.divergence.actual == "stalls there (Version not available: v1)"


def test_an_activity_timeout_fires_when_a_fake_takes_longer_in_virtual_time() -> None:
    # While an activity runs, time stands still; a fake that "takes" 6 minutes moves it.
    def quote(ctx: wf.WorkflowActivityContext, item: str) -> str:
        return f"{item}: 12.50 EUR"

    def quoting(ctx: wf.DaprWorkflowContext, item: str) -> Workflow[Any]:
        try:
            return (yield ctx.call_activity(quote, input=item, timeout=timedelta(minutes=5)))
        except wf.TaskTimeoutError:
            return f"timed out at {ctx.current_utc_datetime.isoformat()}"

    with WorkflowTestEnvironment() as env:
        cancelled: list[bool] = []

        def slow_quote(ctx: wf.WorkflowActivityContext, item: str) -> str:
            env.clock.advance(timedelta(minutes=6))
            deadline = time.monotonic() + 10
            while not ctx.is_cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
            cancelled.append(ctx.is_cancelled)
            return "too late"

        env.register_workflow(quoting)
        env.replace_activity(quote, slow_quote)
        iid = env.client.schedule_new_workflow(quoting, input="lamp")
        state = env.client.wait_for_workflow_completion(iid)
        wait_until(lambda: bool(cancelled), what="the timed-out attempt to stop")
    assert state is not None
    assert state.serialized_output == '"timed out at 2030-01-01T00:06:00+00:00"'
    assert cancelled == [True]


def stamp(ctx: wf.DaprWorkflowContext, _: Any) -> Workflow[str]:
    return ctx.current_utc_datetime.isoformat()
    yield  # (a generator)


def test_schedule_slots_are_wake_ups_of_the_virtual_clock() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(stamp)
        env.client.create_schedule("nightly", stamp, cron="0 2 * * *")
        env.client.create_schedule("hourly", stamp, every=timedelta(hours=1))
        env.sleep(timedelta(days=2))  # nothing else to wait for: the slots move the clock
        assert env.now() == DEFAULT_START + timedelta(days=2)
        nightly = env.client.get_schedule("nightly")
        hourly = env.client.get_schedule("hourly")
        assert nightly is not None and hourly is not None
        runs = [r.instance_id for r in nightly.recent_runs]
        assert runs == [f"nightly@2030-01-0{d}T02:00:00Z" for d in (2, 1)], runs
        assert hourly.recent_runs[0].slot == DEFAULT_START + timedelta(days=2)
        for hour in range(1, 49):  # every slot of the two days fired once, none later
            slot = DEFAULT_START + timedelta(hours=hour)
            iid = f"hourly@{slot:%Y-%m-%dT%H:%M:%SZ}"
            assert env.client.get_workflow_state(iid) is not None, iid
        assert env.client.get_workflow_state("hourly@2030-01-03T01:00:00Z") is None
        state = env.client.wait_for_workflow_completion("nightly@2030-01-02T02:00:00Z")
    # each instance started at its slot, on the virtual clock
    assert state is not None and state.serialized_output == '"2030-01-02T02:00:00+00:00"'


def test_a_wait_for_a_workflow_moves_the_clock_over_schedule_slots_too() -> None:
    with WorkflowTestEnvironment() as env:
        env.register_workflow(ticks)
        env.register_workflow(stamp)
        env.client.create_schedule("nightly", stamp, cron="0 2 * * *")
        iid = env.client.schedule_new_workflow(ticks, input=8)  # 8 x 6 h: two days
        state = env.client.wait_for_workflow_completion(iid)
        assert state is not None and state.runtime_status is wf.WorkflowStatus.COMPLETED
        nightly = env.client.get_schedule("nightly")
    assert nightly is not None
    runs = nightly.recent_runs
    assert [r.slot.day for r in runs] == [2, 1]  # the slots on the way fired, in order
