"""Poison activities: a task whose every attempt kills its worker process (a crash in native
code, an out-of-memory kill, ``os._exit``) is taken again each time its lease lapses, for
ever, unless something counts the attempts.

The store counts them (``ActivityWorkItem.deliveries``: one more at each claim, in the claim's
own UPDATE); a runtime that claims a task handed out more often than its
``max_activity_deliveries`` does not run it again but fails it with :data:`POISONED`, which
the calling workflow sees as a :class:`~treadle.errors.TaskFailedError` it can handle. A retry
policy does not run such a task again: its attempts are spent already.

A crash also costs a delivery to every other task the dead process held. So that healthy work
beside a poison task is not parked with it, a runtime runs a *suspect* (a task whose earlier
delivery ended without a result) alone (:class:`SuspectClaims`): it claims nothing more
until the suspect's result came, and after it starts, or once it saw a suspect, it claims one
task at a time until it claims a task that is not one. A process killed by a suspect then
held nothing else it claimed; its own workflows' next activities are all it may take with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from treadle.clock import Clock, utcnow
from treadle.core.history import TaskFailed
from treadle.core.retry import POISONED
from treadle.errors import FailureDetails
from treadle.store.base import ActivityWorkItem

__all__ = [
    "DEFAULT_MAX_DELIVERIES",
    "POISONED",
    "SuspectClaims",
    "is_poisoned",
    "poisoned_failure",
]

logger = logging.getLogger("treadle.runtime")

DEFAULT_MAX_DELIVERIES = 10
"""The default ``max_activity_deliveries`` of a runtime."""


def is_poisoned(item: ActivityWorkItem, limit: int | None) -> bool:
    """Whether ``item`` was handed out more than ``limit`` times (None: no limit)."""
    return limit is not None and item.deliveries > limit


def poisoned_failure(item: ActivityWorkItem, clock: Clock) -> TaskFailed:
    """The TaskFailed that parks ``item`` instead of running it again (and logs why)."""
    attempts = item.deliveries - 1
    message = (
        f"activity {item.name!r} was started {attempts} times and its worker never reported "
        "back (it crashed or was killed each time); parked: it will not run again. Fix the "
        "activity, then rerun the workflow (or raise max_activity_deliveries)"
    )
    logger.error("instance %s, task %d: %s", item.instance_id, item.task_id, message)
    return TaskFailed(
        timestamp=utcnow(clock),
        task_scheduled_id=item.task_id,
        failure=FailureDetails(message=message, error_type=POISONED),
        task_execution_id=item.task_execution_id,
    )


class SuspectClaims:
    """How many activity tasks a runtime may claim now, so that a suspect runs alone (see the
    module). Dispatcher thread only."""

    def __init__(self) -> None:
        self.careful = True
        """Claim one task at a time (from the start, and after a suspect came)."""
        self.running: int | None = None
        """The row id of the suspect running here, if one is."""

    def room(self, free: int, holds: Callable[[int], bool]) -> int:
        """How many tasks to claim, of ``free`` slots; ``holds``: whether a task (row id) is
        still in flight here."""
        if self.running is not None:
            if holds(self.running):
                return 0  # the suspect runs alone: claims wait for its result
            self.running = None
        return min(free, 1) if self.careful else free

    def claimed(self, item: ActivityWorkItem) -> None:
        """Note a claimed task that is to run (not parked)."""
        if item.deliveries > 1:
            self.running = item.id
            self.careful = True
        else:
            self.careful = False
