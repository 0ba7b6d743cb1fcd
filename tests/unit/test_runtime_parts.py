"""The runtime's parts that own state, on a manual clock: no store, no threads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from treadle.clock import ManualClock, SystemClock, utcnow
from treadle.core.actions import CompleteOrchestration, CreateSubOrchestration
from treadle.core.history import ExecutionTerminated, OrchestrationStatus
from treadle.core.replay import WorkflowExecution
from treadle.runtime.cache import CachedExecution, InstanceCache
from treadle.runtime.inflight import InflightActivities
from treadle.runtime.registry import Registry
from treadle.runtime.turns import TurnInput, build_turn
from treadle.runtime.wakeups import Wakeups
from treadle.store.base import ActivityWorkItem

START = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


def _item(row_id: int, instance_id: str = "i-1") -> ActivityWorkItem:
    return ActivityWorkItem(
        id=row_id,
        instance_id=instance_id,
        execution_id="e-1",
        task_id=row_id,
        name="step",
        input=None,
        task_execution_id=f"e-1:{row_id}",
    )


def test_a_manual_clock_moves_only_when_advanced_and_calls_back_its_waiters() -> None:
    clock = ManualClock(START)
    woken: list[float] = []
    stop = clock.on_advance(lambda: woken.append(clock.monotonic()))
    assert clock.now() == START and clock() == START.timestamp() == clock.time()
    assert clock.monotonic() == 0.0
    clock.advance(timedelta(minutes=1))
    clock.advance(0.5)
    assert utcnow(clock) == START + timedelta(seconds=60.5)
    assert woken == [60.0, 60.5]
    stop()
    clock.advance(1)
    assert woken == [60.0, 60.5]
    with pytest.raises(ValueError, match="never goes back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware datetime"):
        ManualClock(datetime(2031, 1, 1))


def test_the_system_clock_is_the_real_time() -> None:
    clock = SystemClock()
    before = datetime.now(timezone.utc)
    assert before <= utcnow(clock) <= datetime.now(timezone.utc)
    assert abs(clock() - clock.time()) < 1.0
    clock.on_advance(lambda: None)()  # nothing to stop: time never jumps


def test_an_activity_whose_lease_ran_out_on_the_clock_is_not_started_and_is_forgotten() -> None:
    clock = ManualClock(START)
    inflight = InflightActivities(lease_s=10.0, max_concurrent=4, clock=clock)
    first, own = _item(1), _item(-1, "i-2")
    inflight.track(first, granted_at=clock.monotonic())
    inflight.track(own, granted_at=clock.monotonic(), own=True)
    clock.advance(9.9)
    assert inflight.still_leased(first) and inflight.still_leased(own)
    inflight.forget_expired(clock.monotonic())
    assert len(inflight) == 2 and inflight.own_task_out("i-2")
    clock.advance(0.1)  # granted 10 s ago on the clock: the lease may have run out
    assert not inflight.still_leased(first)
    inflight.forget_expired(clock.monotonic())
    assert len(inflight) == 0
    assert not inflight.has_running("i-1") and not inflight.own_task_out("i-2")
    assert not inflight.finish(first)  # a late result: no longer tracked


def test_leases_planned_in_a_round_leave_room_for_twice_the_activities_run_at_once() -> None:
    inflight = InflightActivities(lease_s=10.0, max_concurrent=2, clock=ManualClock(START))
    inflight.track(_item(1), granted_at=0.0)
    inflight.begin_round()
    assert inflight.plan(2, draining=False) == 2
    assert inflight.plan(5, draining=False) == 1  # 2 * 2 - 1 in flight - 2 planned
    assert inflight.plan(1, draining=False) == 0
    inflight.begin_round()
    assert inflight.plan(1, draining=True) == 0
    assert inflight.plan(9, draining=False) == 3
    assert inflight.free() == 1
    assert inflight.finish(_item(1)) and inflight.free() == 2


def test_an_instance_whose_turn_left_activities_in_the_queue_is_kept_until_they_are_claimed() -> (
    None
):
    inflight = InflightActivities(lease_s=10.0, max_concurrent=2, clock=ManualClock(START))
    inflight.begin_round()
    # a fan-out of 6: 4 leased with the turn (twice what runs at once), 2 left in the queue,
    # so the turn keeps the instance (also when prepared without the engine lock)
    assert inflight.plan_turn("i-1", 6, draining=False, counted=False) == (4, True, False)
    assert inflight.plan_turn("i-1", 6, draining=False) == (4, True, False)
    assert inflight.plan_turn("i-1", 6, draining=True)[:2] == (0, False)
    inflight.wait_for_claims("i-1", 2)  # (once the turn is committed, under the engine lock)
    assert inflight.waits_for_claims
    for row_id in range(1, 5):  # the 4 leased ones ran and their results were taken
        inflight.track(_item(row_id), granted_at=0.0)
        assert inflight.finish(_item(row_id))
    inflight.begin_round()
    # the instance's next turn keeps it: 2 of its activities wait for a claim here
    assert inflight.plan_turn("i-1", 0, draining=False) == (0, True, False)
    assert inflight.plan_turn("i-1", 0, draining=True)[1] is False  # not while draining
    inflight.claimed([_item(5), _item(9, "i-9")], short=False, sent_at=0.0)
    assert inflight.plan_turn("i-1", 0, draining=False)[1] is True  # one still waits
    inflight.claimed([_item(6)], short=False, sent_at=0.0)
    assert not inflight.waits_for_claims
    assert inflight.plan_turn("i-1", 0, draining=False)[1] is False


def test_a_claim_that_comes_back_short_forgets_the_activities_waited_for() -> None:
    clock = ManualClock(START)
    inflight = InflightActivities(lease_s=10.0, max_concurrent=1, clock=clock)
    inflight.wait_for_claims("i-1", 3)
    inflight.wait_for_claims("i-2", 1)
    clock.advance(0.001)
    sent_at = clock.monotonic()
    # another worker took the rest: this runtime's claim finds fewer than it asked for
    inflight.claimed([_item(7, "i-1")], short=True, sent_at=sent_at)
    assert not inflight.waits_for_claims
    assert inflight.plan_turn("i-1", 0, draining=False)[1] is False
    assert inflight.plan_turn("i-2", 0, draining=False)[1] is False
    inflight.wait_for_claims("i-1", 1)
    inflight.clear()  # (the runtime stopped)
    assert not inflight.waits_for_claims


def test_a_short_claim_sent_before_a_turn_left_activities_in_the_queue_keeps_them_waited_for() -> (
    None
):
    clock = ManualClock(START)
    inflight = InflightActivities(lease_s=10.0, max_concurrent=1, clock=clock)
    sent_at = clock.monotonic()  # a claim is sent; then a turn's commit leaves 5 in the queue
    clock.advance(0.001)
    inflight.wait_for_claims("i-1", 5)
    inflight.claimed([], short=True, sent_at=sent_at)  # it did not see them
    assert inflight.waits_for_claims
    assert inflight.plan_turn("i-1", 0, draining=False)[1] is True
    clock.advance(0.001)
    inflight.claimed([], short=True, sent_at=clock.monotonic())  # the next one would have
    assert not inflight.waits_for_claims


def test_trimming_the_cache_drops_the_least_recently_used_executions_never_held_ones() -> None:
    cache = InstanceCache(size=2)

    def cached(held: bool) -> CachedExecution:
        execution = WorkflowExecution(lambda ctx, _: None, instance_id="x")
        return CachedExecution(execution, "wf", "e-1", version=1, history_len=3, held=held)

    cache.keep("held", cached(held=True))
    cache.keep("a", cached(held=False))
    cache.keep("b", cached(held=False))
    assert cache.get("a") is None and cache.get("b") is not None
    assert cache.get("held") is not None and cache.held_ids() == ["held"]
    cache.keep("held", cached(held=False))  # let go: now the oldest is "b"
    cache.keep("c", cached(held=False))
    assert cache.get("b") is None and cache.held_count == 0
    cache.evict("held")
    assert cache.get("held") is None


def test_an_execution_is_resumed_until_a_workflow_is_registered_a_held_one_always() -> None:
    cache = InstanceCache(size=10)

    def cached(held: bool) -> CachedExecution:
        execution = WorkflowExecution(lambda ctx, _: None, instance_id="x")
        return CachedExecution(
            execution, "wf", "e-1", version=1, history_len=3, held=held, registry_generation=4
        )

    cache.keep("waits", cached(held=False))
    cache.keep("runs", cached(held=True))
    assert cache.resumable("waits", 4) is not None  # however long it waited
    assert cache.resumable("runs", 5) is not None
    assert cache.resumable("waits", 5) is None  # a workflow was registered since: replayed
    assert cache.get("waits") is None and cache.get("runs") is not None
    assert cache.resumable("unknown", 4) is None


def test_registering_a_workflow_or_a_version_changes_the_generation() -> None:
    registry = Registry()
    seen = [registry.workflow_generation]
    registry.add_workflow(lambda ctx, _: None, "plain")
    seen.append(registry.workflow_generation)
    registry.add_versioned_workflow(lambda ctx, _: None, name="v", version_name="1", is_latest=True)
    seen.append(registry.workflow_generation)
    registry.add_activity(lambda ctx, _: None, "act")  # (activities hold no generator state)
    assert len(set(seen)) == 3 and registry.workflow_generation == seen[-1]


def test_an_instance_set_aside_as_stalled_is_let_back_when_code_may_have_come() -> None:
    clock = ManualClock(START)
    wakeups = Wakeups(clock)
    wakeups.set_aside("stalled", clock.monotonic() + 30.0, stalled=True)
    wakeups.set_aside("other", clock.monotonic() + 30.0)
    assert wakeups.set_aside_ids(clock.monotonic()) == ["stalled", "other"]
    wakeups.retry_stalled()
    assert wakeups.claim_due and wakeups.event.is_set()
    assert wakeups.set_aside_ids(clock.monotonic()) == ["other"]
    wakeups.set_aside("stalled", clock.monotonic() + 30.0)  # set aside again, not as stalled
    wakeups.retry_stalled()
    assert sorted(wakeups.set_aside_ids(clock.monotonic())) == ["other", "stalled"]


def test_an_instance_set_aside_is_let_back_when_its_time_is_up_on_the_clock() -> None:
    clock = ManualClock(START)
    wakeups = Wakeups(clock)
    wakeups.set_aside("i-1", clock.monotonic() + 5.0)
    wakeups.set_aside("i-2", clock.monotonic() + 1.0)
    clock.advance(4.9)
    assert wakeups.set_aside_ids(clock.monotonic()) == ["i-1"]
    assert wakeups.is_set_aside("i-1") and not wakeups.is_set_aside("i-2")
    clock.advance(0.1)
    assert wakeups.set_aside_ids(clock.monotonic()) == []


def test_claims_come_due_once_a_second_on_the_clock() -> None:
    clock = ManualClock(START)
    wakeups = Wakeups(clock)
    wakeups.periodic_claims(clock.monotonic())
    wakeups.claim_due = wakeups.activity_claim_due = False
    clock.advance(0.9)
    wakeups.periodic_claims(clock.monotonic())
    assert not wakeups.claim_due and not wakeups.activity_claim_due
    clock.advance(0.1)
    wakeups.periodic_claims(clock.monotonic())
    assert wakeups.claim_due and wakeups.activity_claim_due


def test_a_run_terminated_in_the_turn_that_creates_a_child_terminates_that_child() -> None:
    # (an SDK worker's turn: the children it knew of were read before it created one)
    turn = TurnInput("p", "wf", "p-e1", version=3, history_len=5, created_children=["p-old"])
    output = build_turn(
        turn,
        new_events=[ExecutionTerminated(timestamp=START, recurse=True)],
        actions=[
            CreateSubOrchestration(id=1, name="child", instance_id="p-new"),
            CompleteOrchestration(id=2, status=OrchestrationStatus.TERMINATED),
        ],
        status=OrchestrationStatus.RUNNING,
        custom_status=None,
        now=START,
    )
    assert [c.instance_id for c in output.commit.new_instances] == ["p-new"]
    ended = [
        m.instance_id
        for m in output.commit.new_messages
        if isinstance(m.event, ExecutionTerminated)
    ]
    assert ended == ["p-old", "p-new"]
