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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from treadle.core.actions import Action, CreateSubOrchestration, ScheduleTask
from treadle.core.validation import default_child_id

_CLOSE = timedelta(milliseconds=1)


def at_timeout(fire_at: datetime, call: ScheduleTask, now: datetime) -> bool:
    """Whether a timer recorded at ``now`` (the turn's time) firing at ``fire_at`` fires
    when the timeout of ``call`` (made in that turn) would have."""
    return call.timeout is not None and abs(fire_at - (now + call.timeout)) <= _CLOSE


V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class LegacyTimeout:
    """A timer of the old kind: the activity attempt it bounds, its name and the timeout."""

    task_id: int
    name: str
    timeout: timedelta


@dataclass(slots=True)
class LegacyTimeouts:
    """What the replay needs to recognise and honour timeout timers of old histories."""

    timers: dict[int, LegacyTimeout] = field(default_factory=dict)
    """Timer id -> the attempt its firing fails (if it is still running then)."""
    last_record: Action | None = None
    """The action the last action record in history matched."""
    twin: tuple[int, ScheduleTask, datetime] | None = None
    """A timer the code made right after a timed call, firing when the call's timeout would
    have: matched as the code's timer, unless the next record shows it was the call's."""

    def on_record(self, action: Action) -> None:
        """An action record in history matched ``action``."""
        self.last_record = action
        self.twin = None

    def timed_call_before(self, timer_id: int) -> ScheduleTask | None:
        """The timed call the last record matched, if its id is just before ``timer_id``."""
        call = self.last_record
        if isinstance(call, ScheduleTask) and call.timeout is not None and call.id == timer_id - 1:
            return call
        return None

    def twin_of(self, timer_id: int, fire_at: datetime) -> tuple[int, ScheduleTask] | None:
        """If the recorded timer ``timer_id`` (which the code did not make) follows one
        taken as the code's that was in fact the timeout of the call before it (they fire at
        the same time): that timer's id and the call."""
        twin, self.twin = self.twin, None
        if twin is None or twin[0] != timer_id - 1 or twin[2] != fire_at:
            return None
        return twin[0], twin[1]

    def arm(self, timer_id: int, call: ScheduleTask, timeout: timedelta) -> None:
        """Take timer ``timer_id`` as the timeout of the attempt ``call``."""
        self.timers[timer_id] = LegacyTimeout(call.id, call.name, timeout)


def shift_keys(ids: dict[int, V], first: int) -> dict[int, V]:
    """``ids`` with every key from ``first`` on moved up by one."""
    return {(k + 1 if k >= first else k): v for k, v in ids.items()}


def shift_action(action: Action, first: int, instance_id: str, execution_id: str) -> Action:
    """``action`` moved up one id if its id is ``first`` or later, with what is named after
    its id (an activity's execution id, a child's default instance id) renamed."""
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
