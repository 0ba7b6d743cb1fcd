"""Schedules in the store on every backend: slots fire exactly once, catch up by the overlap
policy, and the client's operations (create, list, get, pause, resume, trigger, delete)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Protocol

import pytest

from treadle.client.schedules import ScheduleOperations
from treadle.core.history import ExecutionStarted
from treadle.errors import InvalidInputError, ScheduleAlreadyExistsError, ScheduleNotFoundError
from treadle.store.base import InstanceQuery, Store
from treadle.store.schedules import ScheduleStore, fire_due, slot_instance_id

from .helpers import claim_one, finish

T0 = datetime(2030, 3, 17, 17, 46, 40, tzinfo=timezone.utc)  # the FakeClock's start
MINUTE = timedelta(minutes=1)


class Clock(Protocol):
    """The ``clock`` fixture's interface (tests/conftest.py)."""

    def advance(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


def _instances(store: Store) -> list[str]:
    page = store.list_instances(InstanceQuery(limit=1000))
    return sorted(r.instance_id for r in page.instances)


def _ops(store: Store) -> ScheduleOperations:
    return ScheduleOperations(store)


def test_each_slot_starts_one_instance_that_records_its_slot(store: Store, clock: Clock) -> None:
    assert isinstance(store, ScheduleStore)
    ops = _ops(store)
    ops.create("tick", "report", every=MINUTE, input='{"n": 1}', overlap="allow")
    described = ops.get("tick")
    assert described is not None and described.next_slot == T0 + MINUTE
    assert fire_due(store, T0 + timedelta(seconds=59)) == 0
    assert fire_due(store, T0 + MINUTE) == 1
    assert fire_due(store, T0 + MINUTE) == 0  # (fired already)
    iid = slot_instance_id("tick", T0 + MINUTE)
    assert iid == "tick@2030-03-17T17:47:40Z"
    assert _instances(store) == [iid]
    record = store.get_instance(iid)
    assert record is not None and (record.name, record.input) == ("report", '{"n": 1}')
    clock.advance(60)  # (its start is visible from its slot on)
    (message,) = claim_one(store).messages
    assert isinstance(message.event, ExecutionStarted)
    assert message.event.scheduled_start == T0 + MINUTE
    described = ops.get("tick")
    assert described is not None and described.next_slot == T0 + 2 * MINUTE
    assert [(r.slot, r.instance_id) for r in described.recent_runs] == [(T0 + MINUTE, iid)]


def test_a_slot_fires_exactly_once_however_many_runtimes_race(
    make_store: Callable[..., Store],
) -> None:
    stores = [make_store() for _ in range(4)]
    ops = _ops(stores[0])
    for n in range(3):
        ops.create(f"s{n}", "wf", every=timedelta(seconds=1), overlap="allow", start_at=T0)
    barrier = threading.Barrier(len(stores))
    started: list[int] = []
    errors: list[BaseException] = []

    def race(store: Store) -> None:
        try:
            assert isinstance(store, ScheduleStore)
            barrier.wait()
            total = 0
            for second in range(20):
                total += fire_due(store, T0 + timedelta(seconds=second))
            started.append(total)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(started) == 3 * 20  # slots T0 .. T0+19s of three schedules, once each
    ids = _instances(stores[0])
    assert len(ids) == 60 == len(set(ids))
    for n in range(3):
        runs = ops.get(f"s{n}")
        assert runs is not None and len(runs.recent_runs) == 10  # (the latest ten shown)


def test_after_downtime_only_slots_in_the_catchup_window_fire(store: Store) -> None:
    assert isinstance(store, ScheduleStore)
    ops = _ops(store)
    ops.create("allow", "wf", every=MINUTE, overlap="allow", catchup_window=timedelta(minutes=3))
    ops.create("skip", "wf", every=MINUTE, catchup_window=timedelta(minutes=3))
    later = T0 + timedelta(minutes=10)
    assert fire_due(store, later) == 4 + 1  # allow: minutes 7..10; skip: minute 7 only
    allow = [i for i in _instances(store) if i.startswith("allow@")]
    assert allow == [slot_instance_id("allow", T0 + m * MINUTE) for m in range(7, 11)]
    skip = ops.get("skip")
    assert skip is not None and skip.next_slot == T0 + 11 * MINUTE
    fired = [(r.slot, r.instance_id is not None) for r in reversed(skip.recent_runs)]
    assert fired == [(T0 + m * MINUTE, m == 7) for m in range(7, 11)]


def test_buffer_one_keeps_one_slot_until_the_running_instance_finishes(
    store: Store, clock: Clock
) -> None:
    assert isinstance(store, ScheduleStore)
    ops = _ops(store)
    ops.create("b", "wf", every=MINUTE, overlap="buffer_one")
    assert fire_due(store, T0 + MINUTE) == 1
    first = slot_instance_id("b", T0 + MINUTE)
    assert fire_due(store, T0 + 3 * MINUTE) == 0  # slot 2 waits, slot 3 is skipped
    assert _instances(store) == [first]
    clock.advance(3 * 60)
    finish(store, first)
    assert fire_due(store, T0 + 3 * MINUTE + timedelta(seconds=1)) == 1
    assert _instances(store) == [first, slot_instance_id("b", T0 + 2 * MINUTE)]


def test_pause_resume_trigger_delete_and_list(store: Store, clock: Clock) -> None:
    assert isinstance(store, ScheduleStore)
    ops = _ops(store)
    ops.create("nightly", "report", cron="0 3 * * *", time_zone="Europe/Paris")
    ops.create("often", "wf", every=MINUTE)
    with pytest.raises(ScheduleAlreadyExistsError, match="nightly"):
        ops.create("nightly", "report", cron="0 4 * * *")
    ops.create("nightly", "report", cron="0 4 * * *", time_zone="Europe/Paris", replace=True)
    assert [d.schedule_id for d in ops.list()] == ["nightly", "often"]
    nightly = ops.get("nightly")
    assert nightly is not None and nightly.next_slot == datetime(
        2030, 3, 18, 3, tzinfo=timezone.utc
    )
    ops.pause("often")
    paused = ops.get("often")
    assert paused is not None and paused.paused and paused.next_slot is None
    assert fire_due(store, T0 + 5 * MINUTE) == 0
    iid = ops.trigger("often")  # fires while paused
    assert iid == slot_instance_id("often", T0) and _instances(store) == [iid]
    clock.advance(10 * 60)
    ops.resume("often")
    resumed = ops.get("often")
    assert resumed is not None and resumed.next_slot == T0 + 11 * MINUTE  # none missed
    ops.delete("often")
    assert ops.get("often") is None
    with pytest.raises(ScheduleNotFoundError, match="often"):
        ops.delete("often")
    with pytest.raises(ScheduleNotFoundError):
        ops.trigger("often")
    with pytest.raises(InvalidInputError, match="'@'"):
        ops.create("a@b", "wf", every=MINUTE)
    with pytest.raises(InvalidInputError, match="overlap"):
        ops.create("x", "wf", every=MINUTE, overlap="queue")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        ops.create("x", "wf", every=MINUTE, input="{")
