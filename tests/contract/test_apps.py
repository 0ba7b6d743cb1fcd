"""Store contract: apps and workers. Instances and activity tasks belong to an app and are
claimed by that app's workers, of the names they take; workers advertise themselves; the work
nobody holds is found, noted, and (calls to another app) failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FakeClock

from treadle.core.history import (
    EventRaised,
    ExecutionStarted,
    ExecutionTerminated,
    OrchestrationStatus,
    ParentInfo,
    SubOrchestrationInstanceFailed,
    TaskFailed,
)
from treadle.errors import FailureDetails
from treadle.store.apps import WaitingWork, WorkerInfo, WorkKind
from treadle.store.base import NewActivity, NewInstance, NewMessage, Store

from .helpers import RUNNING, new_instance, start, started_events, turn
from .rows import column, read_rows

NO_WORKER = FailureDetails(message="no worker", error_type="RegistrationError")


def _ids(store: Store, **kwargs: object) -> list[str]:
    items = store.claim_orchestrations("w1", 100, 30, **kwargs)  # type: ignore[arg-type]
    store.release_leases("w1")
    return sorted(i.instance.instance_id for i in items)


def test_an_instance_keeps_its_app(store: Store) -> None:
    start(store, "a-1", app_id="orders")
    start(store, "n-1")
    a = store.get_instance("a-1")
    n = store.get_instance("n-1")
    assert a is not None and a.app_id == "orders"
    assert n is not None and n.app_id == ""
    started = store.claim_orchestrations("w1", 10, 30, app_id="orders")[0].messages[0].event
    assert isinstance(started, ExecutionStarted) and started.app_id == "orders"


def test_workers_claim_only_instances_of_their_app(store: Store) -> None:
    start(store, "a-1", app_id="orders")
    start(store, "b-1", app_id="billing")
    start(store, "n-1")
    assert _ids(store) == ["n-1"]
    assert _ids(store, app_id="orders") == ["a-1"]
    assert _ids(store, app_id="billing") == ["b-1"]
    assert _ids(store, app_id="shipping") == []


def test_workers_claim_only_the_workflows_they_take(store: Store) -> None:
    start(store, "x-1", "x")
    start(store, "y-1", "y")
    start(store, "z-1", "z")
    assert _ids(store, names=["x", "z"]) == ["x-1", "z-1"]
    assert _ids(store, names=[]) == []
    assert _ids(store, names=None) == ["x-1", "y-1", "z-1"]
    assert _ids(store, app_id="orders", names=["x"]) == []


def _queue(store: Store, tasks: list[tuple[str, str]], *, app_id: str = "") -> None:
    """Start "o-1" (of ``app_id``) and queue one unleased task per (name, app)."""
    start(store, "o-1", app_id=app_id)
    item = store.claim_orchestrations("w1", 1, 30, app_id=app_id)[0]
    new = [
        NewActivity("o-1", "o-1-e1", n, name, None, f"t{n}", app_id=app)
        for n, (name, app) in enumerate(tasks)
    ]
    (outcome,) = store.commit_turns("w1", [turn(item, started_events(item), new_activities=new)])
    assert outcome.ok


def test_workers_claim_only_activities_of_their_app_and_names(store: Store) -> None:
    _queue(store, [("a", ""), ("b", ""), ("a", "billing"), ("c", "billing")])
    assert [t.task_id for t in store.claim_activities("w1", 10, 30, names=["b"])] == [1]
    assert store.claim_activities("w1", 10, 30, names=[]) == []
    assert [t.task_id for t in store.claim_activities("w2", 10, 30)] == [0]
    billing = store.claim_activities("w3", 10, 30, app_id="billing", names=["a", "c"])
    assert [t.task_id for t in billing] == [2, 3]


def test_an_own_task_goes_to_the_queue_with_its_app(store: Store) -> None:
    start(store, "o-1", app_id="orders")
    item = store.claim_orchestrations("w1", 1, 30, app_id="orders")[0]
    own = NewActivity(
        "o-1", "o-1-e1", 1, "step", None, "t1", leased=True, own=True, app_id="orders"
    )
    commit = turn(item, started_events(item), new_activities=[own], keep_lease=True)
    assert store.commit_turns("w1", [commit])[0].ok
    store.release_leases("w1")  # the own task goes to the queue, for the app's workers
    assert store.claim_activities("w2", 10, 30) == []
    (task,) = store.claim_activities("w2", 10, 30, app_id="orders", names=["step"])
    assert (task.instance_id, task.task_id) == ("o-1", 1)


def test_a_child_is_created_in_its_app(store: Store) -> None:
    start(store, "p", app_id="orders")
    item = store.claim_orchestrations("w1", 1, 30, app_id="orders")[0]
    child = new_instance(
        "p-child", parent=ParentInfo("p", "p-e1", 1, "wf", app_id="orders"), app_id="shipping"
    )
    commit = turn(item, started_events(item), new_instances=[child])
    assert store.commit_turns("w1", [commit])[0].ok
    record = store.get_instance("p-child")
    assert record is not None and record.app_id == "shipping"
    (claimed,) = store.claim_orchestrations("w2", 10, 30, app_id="shipping")
    started = claimed.messages[0].event
    assert isinstance(started, ExecutionStarted)
    assert started.app_id == "shipping"
    assert started.parent is not None and started.parent.app_id == "orders"
    rows = read_rows(store)["instances"]
    app = column("instances", "app_id")
    assert {(r[0], r[app]) for r in rows} == {("p", "orders"), ("p-child", "shipping")}


# ---- workers' advertisements ---------------------------------------------------------------
def test_workers_advertise_what_they_take(store: Store, clock: FakeClock) -> None:
    assert store.list_workers() == []
    store.advertise_worker(WorkerInfo("w1", "orders", ("wf",), ("a", "b")))
    store.advertise_worker(WorkerInfo("w2", "", None, None))
    first = store.list_workers()
    assert [w.info for w in first] == [
        WorkerInfo("w1", "orders", ("wf",), ("a", "b")),
        WorkerInfo("w2", "", None, None),
    ]
    assert not any(w.stopped for w in first)
    clock.advance(5)
    store.advertise_worker(WorkerInfo("w1", "orders", ("wf", "wf2"), ()), stopped=True)
    w1, w2 = store.list_workers()
    assert w1.info.workflows == ("wf", "wf2") and w1.info.activities == ()
    assert w1.stopped and w1.seen_at - w2.seen_at == timedelta(seconds=5)
    assert w2.is_live(w1.seen_at, timedelta(seconds=5))
    assert not w2.is_live(w1.seen_at, timedelta(seconds=4))
    assert not w1.is_live(w1.seen_at, timedelta(seconds=60))


def test_advertisements_silent_for_a_day_are_forgotten(store: Store, clock: FakeClock) -> None:
    store.advertise_worker(WorkerInfo("old", "", (), ()))
    clock.advance(86_401)
    store.advertise_worker(WorkerInfo("new", "", (), ()))
    assert [w.info.owner for w in store.list_workers()] == ["new"]


# ---- the work that waits -------------------------------------------------------------------
def _children(store: Store) -> None:
    """ "p" (app orders) started; it asks for children "c-ship" (shipping) and "c-own"
    (orders), and for activities "charge" (billing, twice) and "pack" (orders)."""
    start(store, "p", app_id="orders")
    item = store.claim_orchestrations("w1", 1, 30, app_id="orders")[0]

    def child(iid: str, app: str, seq: int) -> NewInstance:
        return new_instance(
            iid, "ship", parent=ParentInfo("p", "p-e1", seq, "wf", app_id="orders"), app_id=app
        )

    tasks = [
        NewActivity("p", "p-e1", 3, "charge", None, "t3", app_id="billing"),
        NewActivity("p", "p-e1", 4, "charge", None, "t4", app_id="billing"),
        NewActivity("p", "p-e1", 5, "pack", None, "t5", app_id="orders"),
    ]
    commit = turn(
        item,
        started_events(item),
        new_instances=[child("c-ship", "shipping", 1), child("c-own", "orders", 2)],
        new_activities=tasks,
    )
    assert store.commit_turns("w1", [commit])[0].ok


def _groups(store: Store, clock: FakeClock) -> dict[tuple[str, str, str], WaitingWork]:
    return {(w.kind.value, w.app_id, w.name): w for w in store.waiting_work(clock.now())}


def test_waiting_work_is_grouped_by_kind_app_name_and_caller(
    store: Store, clock: FakeClock
) -> None:
    _children(store)
    start(store, "top", "ship", app_id="shipping")
    clock.advance(1)
    groups = _groups(store, clock)
    assert sorted(groups) == [
        ("activity", "billing", "charge"),
        ("activity", "orders", "pack"),
        ("workflow", "orders", "ship"),
        ("workflow", "shipping", "ship"),  # twice: called by "p", and top-level
    ]
    charge = groups[("activity", "billing", "charge")]
    assert (charge.caller_app_id, charge.count, charge.started) == ("orders", 2, False)
    assert charge.since == clock.now() - timedelta(seconds=1)
    by_caller = {
        (w.app_id, w.caller_app_id): w
        for w in store.waiting_work(clock.now())
        if w.kind is WorkKind.WORKFLOW
    }
    assert set(by_caller) == {("orders", "orders"), ("shipping", "orders"), ("shipping", None)}
    assert not any(w.started for w in by_caller.values())
    assert all(w.count == 1 for w in by_caller.values())


def test_waiting_work_leaves_out_what_is_held_or_not_yet_visible(
    store: Store, clock: FakeClock
) -> None:
    _children(store)
    assert store.waiting_work(clock.now() - timedelta(seconds=1)) == []
    store.claim_activities("w9", 10, 30, app_id="billing")
    store.claim_orchestrations("w9", 10, 30, app_id="shipping")
    left = {(w.kind, w.app_id) for w in store.waiting_work(clock.now())}
    assert left == {(WorkKind.ACTIVITY, "orders"), (WorkKind.WORKFLOW, "orders")}


def test_a_started_instance_waiting_for_its_turn_is_waiting_work(
    store: Store, clock: FakeClock
) -> None:
    start(store, "o-1")
    item = store.claim_orchestrations("w1", 1, 30)[0]
    assert store.commit_turns("w1", [turn(item, started_events(item), status=RUNNING)])[0].ok
    assert store.waiting_work(clock.now()) == []
    store.send_message(NewMessage("o-1", EventRaised(name="go")))
    (work,) = store.waiting_work(clock.now())
    assert (work.kind, work.name, work.started, work.caller_app_id) == (
        WorkKind.WORKFLOW,
        "wf",
        True,
        None,
    )


def test_failing_waiting_activities_tells_their_caller(store: Store, clock: FakeClock) -> None:
    _children(store)
    clock.advance(10)
    charge = _groups(store, clock)[("activity", "billing", "charge")]
    assert store.fail_waiting(charge, NO_WORKER, clock.now() - timedelta(seconds=5)) == 2
    assert store.claim_activities("w2", 10, 30, app_id="billing") == []
    (item,) = store.claim_orchestrations("w1", 10, 30, app_id="orders", names=["wf"])
    failed = [m.event for m in item.messages if isinstance(m.event, TaskFailed)]
    assert len(failed) == len(item.messages) == 2
    assert all(e.failure == NO_WORKER for e in failed)
    assert sorted((e.task_scheduled_id, e.task_execution_id) for e in failed) == [
        (3, "t3"),
        (4, "t4"),
    ]
    assert all(m.execution_id == "p-e1" for m in item.messages)


def test_failing_waiting_work_spares_calls_that_came_later(store: Store, clock: FakeClock) -> None:
    _children(store)
    clock.advance(10)
    charge = _groups(store, clock)[("activity", "billing", "charge")]
    assert store.fail_waiting(charge, NO_WORKER, clock.now() - timedelta(seconds=11)) == 0
    assert len(store.claim_activities("w2", 10, 30, app_id="billing")) == 2


def test_failing_a_waiting_child_fails_it_and_tells_its_parent(
    store: Store, clock: FakeClock
) -> None:
    _children(store)
    clock.advance(10)
    ship = next(
        w
        for w in store.waiting_work(clock.now())
        if w.kind is WorkKind.WORKFLOW and w.app_id == "shipping"
    )
    assert store.fail_waiting(ship, NO_WORKER, clock.now()) == 1
    child = store.get_instance("c-ship")
    assert child is not None
    assert (child.status, child.failure) == (OrchestrationStatus.FAILED, NO_WORKER)
    (row,) = [r for r in read_rows(store)["instances"] if r[0] == "c-ship"]
    assert row[column("instances", "finished_at")] is not None  # (see test_finished_at.py)
    assert store.claim_orchestrations("w2", 10, 30, app_id="shipping") == []
    (item,) = store.claim_orchestrations("w1", 10, 30, app_id="orders", names=["wf"])
    (told,) = item.messages
    assert isinstance(told.event, SubOrchestrationInstanceFailed)
    assert (told.event.task_scheduled_id, told.event.failure) == (1, NO_WORKER)
    assert told.execution_id == "p-e1"


@pytest.mark.parametrize("which", ["top-level", "started"])
def test_only_calls_fail(store: Store, clock: FakeClock, which: str) -> None:
    start(store, "top", app_id="shipping")
    if which == "started":
        item = store.claim_orchestrations("w1", 1, 30, app_id="shipping")[0]
        assert store.commit_turns("w1", [turn(item, started_events(item))])[0].ok
        store.send_message(NewMessage("top", EventRaised(name="go")))
    clock.advance(10)
    (work,) = store.waiting_work(clock.now())
    assert store.fail_waiting(work, NO_WORKER, clock.now()) == 0
    record = store.get_instance("top")
    assert record is not None and not record.status.is_terminal


def test_waiting_notes_are_set_cleared_and_dropped_by_a_claim(
    store: Store, clock: FakeClock
) -> None:
    _children(store)
    start(store, "lone", "nobody")
    clock.advance(1)
    groups = _groups(store, clock)
    lone = groups[("workflow", "", "nobody")]
    charge = groups[("activity", "billing", "charge")]
    store.note_waiting([(lone, "no worker has 'nobody'"), (charge, "no billing worker")])

    def notes() -> dict[str, str | None]:
        found = {}
        for iid in ("lone", "p", "c-ship", "c-own"):
            record = store.get_instance(iid)
            assert record is not None
            found[iid] = record.waiting
        return found

    assert notes() == {
        "lone": "no worker has 'nobody'",
        "p": "no billing worker",
        "c-ship": None,
        "c-own": None,
    }
    store.note_waiting([(lone, "still nobody")])
    assert notes()["lone"] == "still nobody" and notes()["p"] is None
    store.claim_orchestrations("w1", 10, 30, names=["nobody"])
    assert notes()["lone"] is None
    store.note_waiting([])
    assert set(notes().values()) == {None}


def test_an_instance_asked_to_terminate_is_claimed_by_any_worker_of_its_app(
    store: Store,
) -> None:
    start(store, "typo", "no_such_workflow")
    start(store, "other-app", "no_such_workflow", app_id="billing")
    assert _ids(store, names=[]) == []
    for iid in ("typo", "other-app"):
        store.send_message(NewMessage(iid, ExecutionTerminated(input='"stop"')))
    assert _ids(store, names=[]) == ["typo"]
    assert _ids(store, names=["wf"]) == ["typo"]
    assert _ids(store, app_id="billing", names=[]) == ["other-app"]
