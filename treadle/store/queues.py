"""Queues: concurrency and rate limits on activities that hold across every worker of a store.

An activity registered with a queue (``runtime.register_activity(fn, queue=wf.Queue("mail",
concurrency=5, rate_limit=100, period=timedelta(minutes=1)))``) is never leased at
enqueue time nor run as its instance's own task: its tasks wait in ``activity_tasks`` like any
other, and workers claim them through :meth:`QueueStore.claim_queued`, one transaction that
counts what runs and what started and leases no more than the limits leave room for:

- concurrency: the queue's tasks leased now (a live lease) count against it; a task whose
  worker died stops counting when its lease expires, and is claimed again;
- rate: every claim of a task of the queue is logged (``queue_starts``); the claims in the
  last ``period`` count against it (a sliding window, so no window of that length ever sees
  more);
- priority: tasks of the queue are claimed highest priority first, then oldest first.

Claims of a queue are serialized across workers (SQLite's single writer; a transaction-scoped
advisory lock per queue on PostgreSQL), so two workers never both take the last free slot.
Tasks of activities with no queue are claimed as before, by the plain claim, which leaves
queued names out: work that uses no limits pays nothing for them.

Workflows go on queues too (``register_workflow(fn, concurrency=2)``): a new instance of one
waits, PENDING, until :meth:`QueueStore.admit_queued` gives it a slot within the limits
(``queue_slots``; a slot is live while its instance has not finished, so the concurrency of a
workflow queue counts running instances), and only then is it claimed, by
:meth:`QueueStore.claim_admitted`. Its later turns need no admission. The worker whose turn
ends an instance of a queued workflow admits the next one at once (its admission's commit
wakes the other workers to claim it); a slot freed otherwise (an instance purged or replaced)
is seen by the workers' look every :data:`ADMISSION_RETRY_S` while instances wait.

The limits of a queue live in the store (``queue_limits``), so every worker claims under the
same ones: each worker writes the limits it registered when it starts (the last one to start
wins, and a worker whose registration changes what another registered logs a warning), unless
an operator pinned them (:meth:`QueueStore.put_queue_limits` with ``pinned``, which the
client's ``set_queue_limits`` and ``treadle queue set`` call): registrations then leave them
alone until released. Every claim and admission reads the stored limits of its queue in its
own transaction; a queue with no stored limits (a store written by an older treadle) is
claimed under the worker's registered ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from treadle.core.records import record_class
from treadle.store.base import ActivityWorkItem, OrchestrationWorkItem

__all__ = [
    "ADMISSION_RETRY_S",
    "Queue",
    "QueueClaim",
    "QueueLimits",
    "QueueStore",
    "QueuedNames",
]

ADMISSION_RETRY_S = 0.25
"""How soon a worker looks again at a workflow queue whose concurrency limit holds instances
back: the finish of a queued instance frees its slot and admits the next one at once (in the
worker that ran it), so this look only finds slots freed otherwise (a purge)."""


@record_class
class Queue:
    """A named queue of activities, with limits that hold across every worker of the store.

    Attributes:
        name: the queue's name (workers that register activities on a queue of the same
            name must give it the same limits).
        concurrency: at most this many of its tasks run at once (None: no limit).
        rate_limit: at most this many of its tasks start per ``period`` (None: no limit).
        period: the window of ``rate_limit``.
    """

    name: str
    concurrency: int | None = None
    rate_limit: int | None = None
    period: timedelta = field(default=timedelta(seconds=1))

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("name: a queue needs a non-empty name")
        for attr in ("concurrency", "rate_limit"):
            value = getattr(self, attr)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{attr}: a whole number of 1 or more, or None, not {value!r}")
        if not isinstance(self.period, timedelta) or self.period <= timedelta(0):
            raise ValueError(f"period: a positive timedelta, not {self.period!r}")


@record_class
class QueuedNames:
    """A queue and the activities on it that a worker runs.

    Attributes:
        queue: the queue.
        priorities: each activity name's priority (higher first).
    """

    queue: Queue
    priorities: Mapping[str, int]


@record_class
class QueueClaim:
    """What :meth:`QueueStore.claim_queued` leased, and when to look again.

    Attributes:
        items: the tasks leased.
        retry_after_s: tasks wait that the limits held back: look again after this long
            (None: nothing waits beyond what was taken, or the worker took all it asked for).
    """

    items: list[ActivityWorkItem]
    retry_after_s: float | None = None


@record_class
class QueueLimits:
    """A queue's limits as the store keeps them.

    Attributes:
        queue: the queue and its limits.
        pinned: set by an operator: workers' registrations do not change them.
        updated_by: who wrote them last (a worker's owner id, or ``"operator"``).
        updated_at: when.
    """

    queue: Queue
    pinned: bool
    updated_by: str
    updated_at: datetime


@runtime_checkable
class QueueStore(Protocol):
    """A store that claims queued activity tasks and admits queued workflow instances within
    their limits (see the module)."""

    def claim_queued(
        self,
        owner: str,
        queued: QueuedNames,
        limit: int,
        lease_s: float,
        *,
        app_id: str = "",
    ) -> QueueClaim:
        """Lease up to ``limit`` visible tasks of ``queued``'s activities that nobody holds,
        no more than the queue's limits leave room for, highest priority then oldest first."""
        ...

    def put_queue_limits(self, queue: Queue, *, by: str, pinned: bool) -> QueueLimits | None:
        """Store ``queue``'s limits for every worker, and return the ones stored before (None:
        none). A registration (``pinned=False``) leaves limits an operator pinned alone (and
        returns them); ``pinned=True`` always writes, and pins."""
        ...

    def list_queue_limits(self) -> list[QueueLimits]:
        """The stored limits of every queue, by name."""
        ...

    def release_queue_limits(self, name: str) -> bool:
        """Unpin the queue's limits (the next registration replaces them); False if the
        store has none for it."""
        ...

    def admit_queued(self, queued: QueuedNames, *, app_id: str = "") -> float | None:
        """Admit waiting (PENDING, never started) instances of ``queued``'s workflows, no
        more than the queue's limits leave room for, highest priority then oldest first: each
        gets a slot, live until it finishes. Returns when to look again if some still wait
        (None: none wait)."""
        ...

    def claim_admitted(
        self,
        owner: str,
        limit: int,
        lease_s: float,
        exclude: Sequence[str] = (),
        *,
        app_id: str = "",
        names: Sequence[str] | None = None,
    ) -> list[OrchestrationWorkItem]:
        """``claim_orchestrations`` of ``names``, leaving out the instances that have not
        started and that their queue has not admitted."""
        ...


def queue_room(
    queue: Queue, running: int, recent_starts: Sequence[float], now: float
) -> tuple[int, float | None]:
    """How many tasks of ``queue`` may start now, and, if none or few may, how long until
    more may (None: as soon as a running one finishes, or no limit holds them back).

    Args:
        running: the queue's tasks leased now.
        recent_starts: the times (seconds since the epoch) of its claims in the last period,
            oldest first.
        now: seconds since the epoch.
    """
    room = 1 << 30
    wait: float | None = None
    if queue.concurrency is not None:
        room = min(room, queue.concurrency - running)
    if queue.rate_limit is not None:
        left = queue.rate_limit - len(recent_starts)
        if left < room:
            room = left
            # the claims that must leave the window before another may start
            over = len(recent_starts) - queue.rate_limit
            oldest = recent_starts[max(over, 0)] if recent_starts else now
            wait = max(0.0, oldest + queue.period.total_seconds() - now) + 0.001
    return max(room, 0), wait
