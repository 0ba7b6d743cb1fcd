"""A turn of the current round, from its preparation to its commit, and the limits on turns.

:class:`PendingTurn` carries one instance's turn through a round: prepared
(:mod:`treadle.runtime.prepare`, :mod:`treadle.runtime.detours`), committed
(:mod:`treadle.runtime.commits`), then acted on (:mod:`treadle.runtime.outcomes`).

Threads: a pending turn belongs to the round that made it: to the thread that holds the
engine lock, or the client thread preparing its start's first turn. No state of its own.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING

from treadle.core.history import ExecutionStarted, HistoryEvent
from treadle.core.records import record_class
from treadle.runtime.cache import CachedExecution
from treadle.runtime.turns import TurnOutput
from treadle.store.base import ActivityWorkItem, TurnCommit

if TYPE_CHECKING:
    from treadle.runtime.remote import RemoteAnswer

__all__ = ["STALL_RETRY_S", "START_TURN_LIMIT_S", "PendingTurn", "TurnInterrupted"]

START_TURN_LIMIT_S = 1.0
"""How long a start's first turn may run on a client's thread: past that, the instance is
recorded without it, and the dispatcher runs it (see :mod:`treadle.runtime.starts`)."""

STALL_RETRY_S = 5.0
"""How long a runtime leaves an instance that stalled in its hands before trying it again
(sooner if code is registered here, or an SDK worker connects to ``treadle serve``)."""


@record_class(frozen=False)
class PendingTurn:
    """One instance's turn in the current round, before it is committed."""

    instance_id: str
    """The instance."""
    output: TurnOutput | None = None
    """The built turn, when the workflow ran (None for a turn that only fails or consumes)."""
    commit: TurnCommit | None = None
    """What to commit; None while not prepared, or when nothing is."""
    cached: CachedExecution | None = None
    """The execution the turn advanced, to keep in the cache once committed."""
    history_len_after: int = 0
    """The run's history length once the turn is committed."""
    completions: list[tuple[ActivityWorkItem, HistoryEvent]] = field(default_factory=list)
    """Activity results folded into the turn."""
    remote: RemoteAnswer | None = None
    """The remote worker's answer the turn commits, for a remote turn."""
    timed_out: list[int] = field(default_factory=list)
    """Activity calls (task ids) whose timeout passed in this turn: told to stop once it is
    committed."""
    left_in_queue: int = 0
    """Activities the turn schedules to run here but leaves in the store's queue for lack
    of room: the instance is kept until this runtime's claims take them (see
    :meth:`~treadle.runtime.inflight.InflightActivities.wait_for_claims`)."""
    started: ExecutionStarted | None = None
    """The run's start, for a turn that ends a run not cached here (a termination of an SDK
    worker's run): its name and start time, for the metrics."""


class TurnInterrupted(BaseException):
    """A KeyboardInterrupt in a turn prepared on the main thread (a start there carrying the
    engine's turns along): Ctrl-C, or the workflow's own code; the caller leaves the turns
    to the dispatcher, whose thread tells which (see
    :meth:`~treadle.runtime.prepare.TurnPreparer.prepare_or_fail`)."""
