"""Replaying activity timeouts recorded as timers (histories of schema 8 and before).

Up to schema 8, ``call_activity(..., timeout=T)`` recorded two actions: the ScheduleTask
(id n) and, right after it, a CreateTimer (id n + 1, firing at the turn's time + T) whose
TimerFired failed the attempt if it was still running; each retry armed a new timer the same
way. Since schema 9 the store keeps the timeout (start-to-close) and no timer is recorded, so
the code of today makes one action fewer per timed call, and every later action's id is one
lower than history says.

An instance started before the upgrade keeps the timer-based timeout for the calls it
already made: when history has a TimerCreated (id k) right after the TaskScheduled (k - 1)
of a timed call, and the code made no timer at k (or made one firing at another time), that
timer is taken as the call's timeout (:class:`LegacyTimeouts` remembers which attempt it
bounds) and every action the code made after the call moves up one id, so the rest of the
history lines up. The same history gives the same ids on every replay, whole or turn by turn,
as the decision depends only on the events and the code's actions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import field
from datetime import datetime, timedelta
from typing import TypeVar

from treadle.core.actions import Action, CreateSubOrchestration, CreateTimer, ScheduleTask
from treadle.core.history import TimerCreated
from treadle.core.records import record_class
from treadle.core.validation import default_child_id

_CLOSE = timedelta(milliseconds=1)  # (a recorded time: the turn's time + the timeout)

V = TypeVar("V")


@record_class
class LegacyTimeout:
    """A timer of the old kind: the activity attempt it bounds, its name and the timeout."""

    task_id: int
    name: str
    timeout: timedelta


@record_class(frozen=False)
class LegacyTimeouts:
    """What the replay needs to recognise and honour timeout timers of old histories."""

    timers: dict[int, LegacyTimeout] = field(default_factory=dict)
    """Timer id -> the attempt its firing fails (if it is still running then)."""
    last_record: Action | None = None
    """The action the last action record in history matched."""
    twin: tuple[int, ScheduleTask, datetime] | None = None
    """A recorded timer matched to the code's timer made right after a timed call, firing
    when the call's timeout would have: the code's, unless the next record is the code's."""

    def on_record(self, action: Action) -> None:
        """An action record in history matched ``action``."""
        self.last_record = action
        if self.twin is not None and self.twin[0] != action.id:
            self.twin = None

    def timer_created(
        self, event: TimerCreated, pending: Action | None, now: datetime
    ) -> int | None:
        """Whether the recorded timer ``event`` (recorded at ``now``) is the timeout of the
        timed call before it rather than the code's timer ``pending`` (the action the code
        made at its id): if so, take it as that and return the id from which the code's
        actions move up one; else None (then match it with ``pending``)."""
        timer_id, fire_at = event.event_id, event.fire_at
        twin, self.twin = self.twin, None
        if (
            not isinstance(pending, CreateTimer)
            and twin is not None
            and (twin[0], twin[2]) == (timer_id - 1, fire_at)
        ):  # the timer before was the call's, this one is the code's
            self._take(twin[0], twin[1], fire_at - now)
            return twin[0]
        call = self.last_record
        if not isinstance(call, ScheduleTask) or call.timeout is None or call.id != timer_id - 1:
            return None
        at_timeout = abs(fire_at - (now + call.timeout)) <= _CLOSE
        if isinstance(pending, CreateTimer):
            if pending.fire_at == fire_at and at_timeout:  # either: the code's, unless...
                self.twin = (timer_id, call, fire_at)
            if pending.fire_at == fire_at or not at_timeout:
                return None
        self._take(timer_id, call, fire_at - now)
        return timer_id

    def _take(self, timer_id: int, call: ScheduleTask, timeout: timedelta) -> None:
        self.timers[timer_id] = LegacyTimeout(call.id, call.name, timeout)
        self.last_record = None


def shift_keys(ids: dict[int, V], first: int) -> dict[int, V]:
    """``ids`` with every key from ``first`` on moved up by one."""
    return {(k + 1 if k >= first else k): v for k, v in ids.items()}


def shift_actions(
    actions: dict[int, Action], first: int, instance_id: str, execution_id: str
) -> tuple[dict[int, Action], dict[str, str]]:
    """``actions`` (by id) with every one from id ``first`` on moved up one id, with what is
    named after its id (an activity's execution id, a child's default instance id) renamed;
    and the children's instance ids renamed (old -> new)."""
    moved: dict[int, Action] = {}
    renamed: dict[str, str] = {}
    for action in actions.values():
        new = _shift_action(action, first, instance_id, execution_id)
        moved[new.id] = new
        old_child = action.instance_id if isinstance(action, CreateSubOrchestration) else None
        new_child = new.instance_id if isinstance(new, CreateSubOrchestration) else None
        if old_child is not None and new_child is not None and old_child != new_child:
            renamed[old_child] = new_child
    return moved, renamed


def _shift_action(action: Action, first: int, instance_id: str, execution_id: str) -> Action:
    old = action.id
    if old < first:
        return action
    new = old + 1
    if isinstance(action, ScheduleTask) and action.task_execution_id == f"{execution_id}:{old}":
        return dataclasses.replace(action, id=new, task_execution_id=f"{execution_id}:{new}")
    if isinstance(action, CreateSubOrchestration) and action.instance_id == default_child_id(
        instance_id, old
    ):
        return dataclasses.replace(action, id=new, instance_id=default_child_id(instance_id, new))
    return dataclasses.replace(action, id=new)
