"""Turns of every shape, staged on a fresh store, for the tests of the commit paths
(test_commit_paths.py).

A stage function prepares a store (starts, claims, earlier commits) on a clock that starts at
:data:`T0`, and returns the groups of turns to commit, with what each turn's outcome must be.
It does the same on every fresh store, so that what different commit paths leave can be
compared row for row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from treadle.core.history import (
    EventRaised,
    ExecutionCompleted,
    HistoryEvent,
    OrchestratorStarted,
    ParentInfo,
    TaskCompleted,
    TaskScheduled,
    TimerCreated,
    TimerFired,
)
from treadle.store.base import (
    ID_TAKEN,
    ActivityResult,
    ActivityWorkItem,
    CommitOutcome,
    NewActivity,
    NewMessage,
    OrchestrationWorkItem,
    Store,
    TurnCommit,
)
from treadle.store.fencing import DELIVERED, GONE

from .helpers import COMPLETED, RUNNING, new_instance, start, started_events, turn

T0 = 1_900_000_000.0
OWNER = "w1"

STALE = "the instance changed since it was read (version 1, the turn was computed from version 0)"
LOST = "lease held by 'w2'"
EXPIRED = "the lease expired"
RELEASED = "nobody holds the instance's lease (it was released)"


class Clock:
    """A settable clock (seconds since the epoch), from :data:`T0`."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def at(self, seconds: float) -> datetime:
        """The time ``seconds`` from now, as a datetime."""
        return datetime.fromtimestamp(self.t + seconds, tz=timezone.utc)


@dataclass(frozen=True)
class Staged:
    """Groups of turns to commit one after the other, and the outcome each turn must have.

    Attributes:
        groups: each is one call of ``commit_turns``.
        errors: per turn, in order over all groups: None (accepted) or its refusal.
    """

    groups: list[list[TurnCommit]]
    errors: list[str | None]


Stage = Callable[[Store, Clock], Staged]


def task(
    iid: str, task_id: int, *, own: bool = False, leased: bool = True, app_id: str = ""
) -> NewActivity:
    """An activity task of ``iid``'s first run (for ``app_id``'s workers)."""
    return NewActivity(
        instance_id=iid,
        execution_id=f"{iid}-e1",
        task_id=task_id,
        name="step",
        input=f'"{iid}-{task_id}"',
        task_execution_id=f"{iid}-t{task_id}",
        leased=leased,
        own=own,
        app_id=app_id,
    )


def claim(
    store: Store, owner: str = OWNER, lease_s: float = 30.0, exclude: Sequence[str] = ()
) -> dict[str, OrchestrationWorkItem]:
    """Claim every claimable instance (but ``exclude``); the work items by instance id."""
    claimed = store.claim_orchestrations(owner, 100, lease_s, exclude)
    return {i.instance.instance_id: i for i in claimed}


def first_turn(
    item: OrchestrationWorkItem,
    *,
    activities: Sequence[NewActivity] = (),
    messages: Sequence[NewMessage] = (),
    **kwargs: Any,
) -> TurnCommit:
    """A claimed instance's first turn: started, its activities and timers scheduled."""
    events: list[HistoryEvent] = [*started_events(item)]
    events += [
        TaskScheduled(
            event_id=a.task_id, name=a.name, input=a.input, task_execution_id=a.task_execution_id
        )
        for a in activities
    ]
    events += [
        TimerCreated(event_id=m.event.timer_id, fire_at=m.event.fire_at)
        for m in messages
        if isinstance(m.event, TimerFired)
    ]
    fields: dict[str, Any] = {
        "keep_lease": True,
        "custom_status": '"started"',
        "new_activities": list(activities),
        "new_messages": list(messages),
    }
    fields.update(kwargs)
    return turn(item, events, **fields)


def next_turn(
    before: TurnCommit, outcome: CommitOutcome, events: Sequence[HistoryEvent], **kwargs: Any
) -> TurnCommit:
    """The turn after ``before`` (accepted with ``outcome``) of the same instance."""
    assert outcome.ok, outcome
    fields: dict[str, Any] = {
        "instance_id": before.instance_id,
        "expected_version": outcome.version,
        "new_events": list(events),
        "history_start": before.history_start + len(before.new_events),
        "status": RUNNING,
        "execution_id": before.execution_id,
    }
    fields.update(kwargs)
    return TurnCommit(**fields)


def commit_one(store: Store, commit: TurnCommit) -> CommitOutcome:
    """Commit ``commit`` alone (setup: the store's own choice of path)."""
    (outcome,) = store.commit_turns(OWNER, [commit])
    assert outcome.ok, outcome
    return outcome


def result(iid: str, task_id: int, row_id: int) -> ActivityResult:
    """The completed result of ``task(iid, task_id)`` queued as row ``row_id``."""
    t = task(iid, task_id)
    item = ActivityWorkItem(
        row_id, iid, t.execution_id, t.task_id, t.name, t.input, t.task_execution_id
    )
    return ActivityResult(item, completed(iid, task_id))


def completed(iid: str, task_id: int) -> TaskCompleted:
    """The event of ``task(iid, task_id)`` completed."""
    return TaskCompleted(
        task_scheduled_id=task_id, result=f'"done {iid}"', task_execution_id=f"{iid}-t{task_id}"
    )


# ---- the scenarios ---------------------------------------------------------------------
def first(store: Store, clock: Clock) -> Staged:
    """A first turn that keeps its lease and its one next step (an own task)."""
    start(store, "o-1", input='"in"')
    item = claim(store)["o-1"]
    clock.advance(5)  # a kept lease with more than half its time left stays as it is
    return Staged([[first_turn(item, activities=[task("o-1", 1, own=True)])]], [None])


def last(store: Store, clock: Clock) -> Staged:
    """A last turn: its own task's result and an event consumed, COMPLETED, lease let go."""
    start(store, "o-1")
    one = first_turn(claim(store)["o-1"], activities=[task("o-1", 1, own=True)])
    own_id = commit_one(store, one).new_activity_ids[0]
    store.send_message(NewMessage("o-1", EventRaised(name="go", input='"now"')))
    item = claim(store)["o-1"]
    clock.advance(1)
    events = [
        *started_events(item),
        completed("o-1", 1),
        ExecutionCompleted(status=COMPLETED, result='"done"'),
    ]
    ending = turn(
        item,
        events,
        status=COMPLETED,
        output='"done"',
        custom_status='"over"',
        consumed_activities=[own_id],
        cancel_activities=True,
    )
    return Staged([[ending]], [None])


def _creating(clock: Clock) -> TurnCommit:
    new = new_instance("o-1", input='"in"', app_id="orders")
    return TurnCommit(
        instance_id="o-1",
        expected_version=0,
        new_events=[OrchestratorStarted(), new.started_event(clock.at(0))],
        history_start=0,
        status=RUNNING,
        execution_id=new.execution_id,
        keep_lease=True,
        new_activities=[task("o-1", 1, own=True, app_id="orders")],
        create=new,
    )


def creating(store: Store, clock: Clock) -> Staged:
    """A turn that creates its instance (TurnCommit.create)."""
    return Staged([[_creating(clock)]], [None])


def creating_taken(store: Store, clock: Clock) -> Staged:
    """A turn that would create its instance, whose id is taken."""
    start(store, "o-1")
    return Staged([[_creating(clock)]], [ID_TAKEN])


def simple_group(store: Store, clock: Clock) -> Staged:
    """Two simple turns of two instances: one queues tasks (leased and not), a timer to
    itself and an event to a third instance; the other records a task's result inline."""
    for iid in ("a", "b", "c"):
        start(store, iid)
    items = claim(store)
    b_one = first_turn(items["b"], activities=[task("b", 1)])
    b_out = commit_one(store, b_one)
    (b_task,) = b_out.new_activity_ids
    b_two = next_turn(
        b_one,
        b_out,
        [OrchestratorStarted(), completed("b", 1)],
        consumed_activities=[b_task],
        custom_status='"b2"',
    )
    timer = NewMessage(
        "a", TimerFired(timer_id=3, fire_at=clock.at(60)), "a-e1", visible_at=clock.at(60)
    )
    event = NewMessage("c", EventRaised(name="hello", input='"from a"'))
    a_one = first_turn(
        items["a"],
        activities=[task("a", 1), task("a", 2, leased=False, app_id="billing")],
        messages=[timer, event],
    )
    clock.advance(2)
    return Staged([[a_one, b_two]], [None, None])


def children_in_apps(store: Store, clock: Clock) -> Staged:
    """A turn that starts a child in another app and queues an activity for a third."""
    start(store, "p", app_id="orders")
    item = store.claim_orchestrations(OWNER, 10, 30, app_id="orders")[0]
    parent = ParentInfo("p", "p-e1", 2, "wf", app_id="orders")
    child = new_instance("p-child", parent=parent, app_id="shipping")
    one = first_turn(
        item,
        activities=[task("p", 1, leased=False, app_id="billing")],
        new_instances=[child],
    )
    clock.advance(1)
    return Staged([[one]], [None])


def _refused(store: Store, clock: Clock) -> dict[str, TurnCommit]:
    """One turn for each reason to refuse a turn, and one that is accepted, by name."""
    start(store, "lost")
    lost = claim(store, lease_s=30)["lost"]
    clock.advance(31)  # its lease expired: another worker takes the instance
    store.send_message(NewMessage("lost", EventRaised(name="again")))
    assert list(claim(store, "w2", lease_s=60)) == ["lost"]
    others = ["stale", "released", "delivered", "gone", "ok"]
    for iid in others:
        start(store, iid)
    items = claim(store, lease_s=60)
    start(store, "expired")
    expired = claim(store, lease_s=5, exclude=others)["expired"]  # (not renewing theirs)
    commit_one(store, first_turn(items["stale"]))
    store.release_leases(OWNER, ["released"])
    d_one = first_turn(items["delivered"], activities=[task("delivered", 1)])
    d_out = commit_one(store, d_one)
    store.complete_activities(OWNER, [result("delivered", 1, d_out.new_activity_ids[0])])
    g_one = first_turn(items["gone"], status=COMPLETED, keep_lease=False, output='"x"')
    g_out = commit_one(store, g_one)
    assert store.purge_instance("gone") == 1
    clock.advance(6)  # the lease of "expired" (5 s) is over; the others' (60 s) are not
    return {
        "stale": first_turn(items["stale"]),
        "lost": first_turn(lost),
        "expired": first_turn(expired),
        "released": first_turn(items["released"]),
        "delivered": next_turn(
            d_one,
            d_out,
            [OrchestratorStarted(), completed("delivered", 1)],
            consumed_activities=d_out.new_activity_ids,
        ),
        "gone": next_turn(g_one, g_out, [OrchestratorStarted()]),
        "ok": first_turn(items["ok"], activities=[task("ok", 1)]),
    }


REFUSALS = {
    "stale": STALE,
    "lost": LOST,
    "expired": EXPIRED,
    "released": RELEASED,
    "delivered": DELIVERED,
    "gone": GONE,
    "ok": None,
}


def refusals_in_a_group(store: Store, clock: Clock) -> Staged:
    """One group: a turn refused for each reason, and one accepted."""
    turns = _refused(store, clock)
    return Staged([list(turns.values())], [REFUSALS[name] for name in turns])


def refusals_alone(store: Store, clock: Clock) -> Staged:
    """Each refused turn that a single-turn statement can commit, committed alone."""
    turns = _refused(store, clock)
    alone = ["stale", "lost", "expired", "released", "gone"]
    return Staged([[turns[name]] for name in alone], [REFUSALS[name] for name in alone])
