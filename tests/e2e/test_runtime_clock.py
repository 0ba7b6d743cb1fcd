"""A runtime on a manual clock: its timestamps and deadlines move only when the test moves it.

The negative checks ("nothing happens while the clock stands still") wait a short real time:
on a clock that does not move, what they look for cannot come, however long one waits.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import treadle as wf
from treadle.clock import ManualClock
from treadle.runtime.apps import HEARTBEAT_S
from treadle.store.base import OrchestrationWorkItem, Store
from treadle.store.sqlite import SqliteStore

from .helpers import finish, status_of, wait_until, waiting_reason

START = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
STILL_S = 0.3  # how long a negative check watches a runtime whose clock stands still


def _now_iso(ctx: wf.WorkflowContext, _: Any) -> str:
    return ctx.current_utc_datetime.isoformat()


def _sleep_an_hour(ctx: wf.WorkflowContext, _: Any) -> Generator[wf.Task[Any], Any, str]:
    yield ctx.create_timer(timedelta(hours=1))
    return ctx.current_utc_datetime.isoformat()


@pytest.fixture
def runtimes() -> Iterator[Callable[..., wf.WorkflowRuntime]]:
    """Makes runtimes, shut down at teardown (a failing test must not leave threads)."""
    made: list[wf.WorkflowRuntime] = []

    def make(store: Store, **options: Any) -> wf.WorkflowRuntime:
        runtime = wf.WorkflowRuntime(store, **options)
        made.append(runtime)
        return runtime

    yield make
    for runtime in reversed(made):
        runtime.shutdown(timeout=2)


@pytest.mark.parametrize("local_starts", [True, False], ids=["local-start", "store-start"])
def test_turns_are_timed_by_the_clock(
    make_store: Callable[..., Store],
    runtimes: Callable[..., wf.WorkflowRuntime],
    local_starts: bool,
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    runtime = runtimes(store, clock=clock, local_starts=local_starts)
    runtime.register_workflow(_now_iso, name="now")
    with runtime, wf.WorkflowClient(store) as client:
        state = finish(client, client.schedule_new_workflow("now"))
    assert state.serialized_output == f'"{START.isoformat()}"'


def test_a_timer_fires_when_the_clock_reaches_it_not_before(
    make_store: Callable[..., Store], runtimes: Callable[..., wf.WorkflowRuntime]
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    runtime = runtimes(store, clock=clock)
    runtime.register_workflow(_sleep_an_hour, name="sleep")
    with runtime, wf.WorkflowClient(store) as client:
        iid = client.schedule_new_workflow("sleep")
        wait_until(
            lambda: any(e.KIND == "TimerCreated" for e in client.get_workflow_history(iid)),
            what="the timer to be created",
        )
        clock.advance(timedelta(minutes=59, seconds=59))
        time.sleep(STILL_S)
        assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
        clock.advance(1)
        state = finish(client, iid)
    assert state.serialized_output == f'"{(START + timedelta(hours=1)).isoformat()}"'


def test_a_workflow_nobody_has_waits_noted_on_the_clock_until_it_is_registered(
    make_store: Callable[..., Store],
    runtimes: Callable[..., wf.WorkflowRuntime],
) -> None:
    clock = ManualClock(START)
    store = make_store(clock=clock)
    runtime = runtimes(store, clock=clock)
    with runtime, wf.WorkflowClient(store) as client:
        iid = client.schedule_new_workflow("now")
        time.sleep(STILL_S)
        state = client.get_workflow_state(iid)
        assert state is not None and state.runtime_status is wf.WorkflowStatus.PENDING
        assert state.waiting_reason is None  # (no heartbeat yet: the clock stands still)
        clock.advance(HEARTBEAT_S)  # a heartbeat: the runtime sweeps, and notes the wait
        reason = waiting_reason(client, iid)
        assert "workflow 'now'" in reason and "register_workflow" in reason
        runtime.register_workflow(_now_iso, name="now")  # taken by the next claim
        clock.advance(1.0)  # (claims are made once a second)
        state = finish(client, iid, timeout=3.0)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.waiting_reason is None  # the claim cleared it


def test_an_activity_whose_lease_ran_out_on_the_clock_is_not_started(
    make_store: Callable[..., Store],
    runtimes: Callable[..., wf.WorkflowRuntime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two activities leased together; one thread runs them one after the other. While the
    first runs, the runtime's clock passes their lease (as if the process had been paused):
    the second is not started. The store keeps the real time, so no other claim of this
    runtime takes the task again (another worker would, once the store's lease ran out);
    released at shutdown, it is run once, by the next runtime."""
    calls: dict[str, int] = {"first": 0, "second": 0}
    first_entered, first_go = threading.Event(), threading.Event()

    def first(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        calls["first"] += 1
        first_entered.set()
        first_go.wait(10)
        return "one"

    def second(ctx: wf.WorkflowActivityContext, _: Any) -> str:
        calls["second"] += 1
        return "two"

    def both(ctx: wf.WorkflowContext, _: Any) -> Generator[wf.Task[Any], Any, list[str]]:
        results: list[str] = yield wf.when_all(
            [ctx.call_activity("first"), ctx.call_activity("second")]
        )
        return results

    def register(runtime: wf.WorkflowRuntime) -> wf.WorkflowRuntime:
        runtime.register_workflow(both, name="both")
        runtime.register_activity(first, name="first")
        runtime.register_activity(second, name="second")
        return runtime

    clock = ManualClock(START)
    store = make_store()
    paused = register(runtimes(store, clock=clock, lease_s=10.0, max_concurrent_activities=1))
    with wf.WorkflowClient(store) as client:
        with caplog.at_level(logging.WARNING, logger="treadle.runtime"), paused:
            iid = client.schedule_new_workflow("both")
            assert first_entered.wait(10), "the first activity never started"
            clock.advance(10.0)
            first_go.set()
            wait_until(
                lambda: any("lease ran out" in r.message for r in caplog.records),
                what="the runtime to refuse to start the second activity",
            )
            wait_until(
                lambda: any(e.KIND == "TaskCompleted" for e in client.get_workflow_history(iid)),
                what="the first activity's result to be committed",
            )
            assert calls == {"first": 1, "second": 0}
        after = register(runtimes(store, lease_s=10.0))
        with after:
            state = finish(client, iid)
    assert state.serialized_output == '["one","two"]'
    assert calls == {"first": 1, "second": 1}


class _FailingClaims(SqliteStore):
    """Its claims of instances fail while ``failing``; it records the clock's time of each
    claim, and tells the runtime of new work when the test says (``notify``)."""

    def __init__(self, url: str, clock: ManualClock) -> None:
        super().__init__(url, clock=clock)
        self.failing = True
        self.claims_at: list[float] = []
        self._runtime_clock = clock
        self._callbacks: list[Callable[[bool, bool], None]] = []

    def on_work(self, callback: Callable[[bool, bool], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def notify(self) -> None:
        for callback in list(self._callbacks):
            callback(True, False)

    def claim_orchestrations(
        self,
        owner: str,
        limit: int,
        lease_s: float = 30.0,
        exclude: Any = (),
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        self.claims_at.append(self._runtime_clock.monotonic())
        if self.failing:
            raise wf.StoreError("the claim statement failed")
        return super().claim_orchestrations(
            owner, limit, lease_s, exclude, app_id=app_id, names=names
        )


def test_the_dispatcher_backs_off_on_the_clock_after_an_error(
    tmp_path: Path, runtimes: Callable[..., wf.WorkflowRuntime]
) -> None:
    clock = ManualClock(START)
    store = _FailingClaims(f"sqlite:///{tmp_path / 'treadle.db'}", clock)
    runtime = runtimes(store, clock=clock, local_starts=False)
    runtime.register_workflow(_now_iso, name="now")

    def claims_after(count: int) -> None:
        """More work is there: the runtime claims once its pause is over on the clock."""
        store.notify()
        time.sleep(STILL_S)
        assert len(store.claims_at) == count, f"claimed at {store.claims_at}"

    with runtime, wf.WorkflowClient(store) as client:
        iid = client.schedule_new_workflow("now")
        wait_until(lambda: store.claims_at, what="the first claim")  # failed: pause 0.05 s
        claims_after(1)
        clock.advance(0.05)
        wait_until(lambda: len(store.claims_at) == 2, what="the claim after the pause")
        claims_after(2)  # failed again: pause 0.1 s
        clock.advance(0.06)
        claims_after(2)
        clock.advance(0.05)
        wait_until(lambda: len(store.claims_at) == 3, what="the claim after the pause")
        store.failing = False
        store.notify()  # failed again: pause 0.2 s
        clock.advance(0.2)
        state = finish(client, iid)
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    # on the clock: the first pause, then one not over after 0.06 s, then the last one
    gaps = [b - a for a, b in zip(store.claims_at, store.claims_at[1:], strict=False)]
    assert gaps == pytest.approx([0.05, 0.11, 0.2])
