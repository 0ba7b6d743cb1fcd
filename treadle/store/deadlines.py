"""Start-to-close activity timeouts, kept by the store.

``call_activity(..., timeout=)`` bounds each attempt from when a worker takes it, not from
when the workflow scheduled it: time spent waiting behind a queue's limits, or for a free
worker, does not count. The task row carries the timeout (``timeout_s``); the claim that
first takes the attempt sets its deadline (``deadline_at = now + timeout_s``), and a claim
after its worker died keeps it (the same attempt, taken over). So the store knows each
attempt's deadline whoever runs it, and whether its worker is alive.

Every runtime of a store looks for attempts past their deadline about once a second (the
chores thread: :meth:`ActivityDeadlines.expire_activity_deadlines`). Expiring one is one
transaction: the task row is deleted and a ``TaskFailed`` with a ``TimeoutError`` goes to its
instance's inbox, so the workflow sees the timeout as an event of its history (replay is
deterministic) and retries under its retry policy. Whatever the timed-out attempt reports
later finds no task row and is dropped; its worker tells it to stop (``ctx.is_cancelled``)
when the failure reaches the instance it holds, or at its next lease renewal, which finds the
task gone. No claim takes a task past its deadline.

A task with a timeout is never leased with the turn that scheduled it nor kept as its
instance's own task: it is always claimed, so the claim is its start.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from treadle.core.history import TaskFailed
from treadle.errors import FailureDetails

__all__ = ["EXPIRE_LIMIT", "ActivityDeadlines", "timeout_failed"]

EXPIRE_LIMIT = 500
"""Attempts past their deadline one pass fails at most (the rest go at the next pass)."""


@runtime_checkable
class ActivityDeadlines(Protocol):
    """A store that fails activity attempts past their start-to-close deadline."""

    def expire_activity_deadlines(self, limit: int = EXPIRE_LIMIT) -> int:
        """Fail up to ``limit`` attempts past their deadline (delete each task, and put a
        TaskFailed with a TimeoutError in its instance's inbox, in one transaction); return
        how many."""
        ...


def timeout_failed(
    *,
    name: str,
    task_id: int,
    task_execution_id: str,
    timeout_s: float,
    timestamp: datetime,
) -> TaskFailed:
    """The TaskFailed event that tells a workflow its activity attempt ran past its timeout."""
    timeout = timedelta(seconds=timeout_s)
    return TaskFailed(
        timestamp=timestamp,
        task_scheduled_id=task_id,
        failure=FailureDetails(
            f"activity {name!r} (step {task_id}) did not finish within its timeout of "
            f"{timeout} (counted from when a worker took it); it was told to stop, and its "
            "result, if it comes, is dropped",
            "TimeoutError",
        ),
        task_execution_id=task_execution_id,
    )
