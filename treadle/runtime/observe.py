"""What a runtime tells about its work: log records under ``treadle.*``, and metrics if on.

Each instance that fails is logged at INFO (its id, workflow name, error type and message),
and so is each lease taken over from a worker that stopped without releasing it. The
records carry those values as attributes too (``instance_id``, ``workflow_name``,
``error_type``, ``error_message``, ``previous_owner``), which ``treadle worker --log-format
json`` writes as fields.

With metrics on (see :mod:`treadle.runtime.metrics`), the same points count into them, with
the commit latency and the activities' outcomes; the runs of SDK workers (``treadle serve``)
count here too, as their final turns commit (their activities are counted by the server).
With metrics off, a round pays one branch per committed turn (is it terminal?) and nothing
else. With traces on (see :mod:`treadle.runtime.tracing`), the turns are stamped with trace
ids before their commit, and the spans of what they finished are emitted after it; off,
that is one branch a round.

Threads: :meth:`Observer.committed` and :meth:`Observer.taken_over` run on the thread that
holds the engine lock; activity threads record their attempts in the metrics themselves
(``WorkerMetrics.activity_done``), which take their own locks.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from treadle.clock import Clock, utcnow
from treadle.core.history import (
    EPOCH,
    ExecutionStarted,
    HistoryEvent,
    OrchestrationStatus,
)
from treadle.runtime.pending import PendingTurn
from treadle.store.base import (
    CommitOutcome,
    OrchestrationWorkItem,
    TurnCommit,
)

if TYPE_CHECKING:
    from treadle.runtime.metrics import WorkerMetrics
    from treadle.runtime.tracing import Tracing

__all__ = ["Observer"]

logger = logging.getLogger("treadle.runtime.observe")

_OUTCOMES = {
    OrchestrationStatus.COMPLETED.name: "success",
    OrchestrationStatus.FAILED.name: "failed",
    OrchestrationStatus.TERMINATED.name: "terminated",
}
"""Dapr's status label of a finished run, by its status's name (a str key: an enum member
would be hashed by a call into Python on every lookup)."""


class Observer:
    """Logs (and counts, with ``metrics``) what one runtime's engine does.

    Args:
        metrics: where to count, or None for logs only.
        clock: the time a run finished (for its latency).
        tracing: where spans go, or None for no traces.
    """

    def __init__(
        self, metrics: WorkerMetrics | None, clock: Clock, tracing: Tracing | None = None
    ) -> None:
        self.metrics = metrics
        self._clock = clock
        self.tracing = tracing

    def stamp(self, pending: Mapping[str, PendingTurn]) -> None:
        """Before the turns of ``pending`` are committed: record their trace contexts (with
        traces on)."""
        tracing = self.tracing
        if tracing is not None:
            for entry in pending.values():
                commit = entry.commit
                # (a turn of a run under way that starts none has nothing to stamp: the
                # test Tracing.stamp begins with, made here without the call, every step)
                if commit is not None and not (
                    commit.history_start and not commit.new_instances and not commit.reset_history
                ):
                    entry.commit = tracing.stamp(commit)
                    output = entry.output
                    if output is not None and output.commit is commit:
                        output.commit = entry.commit  # (a remote run's kept history grows by it)

    def committed(
        self,
        pending: Mapping[str, PendingTurn],
        outcomes: Mapping[str, CommitOutcome],
        seconds: float,
    ) -> None:
        """The turns of ``pending`` were committed (``outcomes``) in ``seconds`` (0 with
        metrics off: the commit is then not timed)."""
        metrics = self.metrics
        if metrics is not None:
            metrics.commit_took(seconds)
        if self.tracing is not None:
            self.tracing.committed((e.commit for e in pending.values()), outcomes)
        for entry in pending.values():
            commit = entry.commit
            # (a turn with no events ends no run: it only consumes messages of a finished one)
            if commit is None or not commit.status.is_terminal or not commit.new_events:
                continue
            outcome = outcomes.get(entry.instance_id)
            if outcome is not None and outcome.ok:
                self._finished(entry, commit)

    def _finished(self, entry: PendingTurn, commit: TurnCommit) -> None:
        failed = commit.status is OrchestrationStatus.FAILED
        if not failed and self.metrics is None:
            return  # (nothing to log, nothing to count: the name is not looked up)
        name, started = _run_of(entry, commit)
        if failed:
            failure = commit.failure
            error_type = failure.error_type if failure is not None else ""
            message = failure.message if failure is not None else ""
            logger.info(
                "workflow instance %s (%s) failed: %s: %s",
                entry.instance_id,
                name,
                error_type,
                message,
                extra={
                    "instance_id": entry.instance_id,
                    "workflow_name": name,
                    "error_type": error_type,
                    "error_message": message,
                },
            )
        metrics = self.metrics
        if metrics is None:
            return
        name_of_status = commit.status._name_
        status = _OUTCOMES.get(name_of_status) or name_of_status.lower()
        seconds = None
        if started is not EPOCH:
            seconds = max(0.0, (utcnow(self._clock) - started).total_seconds())
        metrics.workflow_finished(name, status, seconds)

    def taken_over(self, item: OrchestrationWorkItem) -> None:
        """The claim of ``item`` took its instance from another owner's lapsed lease."""
        record = item.instance
        logger.info(
            "took over workflow instance %s (%s) from %s, whose lease lapsed",
            record.instance_id,
            record.name,
            item.taken_from,
            extra={
                "instance_id": record.instance_id,
                "workflow_name": record.name,
                "previous_owner": item.taken_from,
            },
        )
        if self.metrics is not None:
            self.metrics.takeovers.inc()


def _run_of(entry: PendingTurn, commit: TurnCommit) -> tuple[str, datetime]:
    """The workflow name of the run a final turn ends, and when it started (EPOCH: unknown):
    from the cached run of a local workflow, else from its ExecutionStarted event, in the
    stored history of a remote (SDK) worker's run or in the turn itself."""
    cached = entry.cached
    if cached is not None:
        return cached.name, cached.execution.started_at
    if entry.started is not None:
        return entry.started.name, entry.started.timestamp
    events: Iterable[HistoryEvent] = commit.new_events
    remote = entry.remote
    if remote is not None and remote.history is not None:
        events = itertools.chain(remote.history.events, events)
    for event in events:  # (ExecutionStarted comes second: the scan is short)
        if isinstance(event, ExecutionStarted):
            return event.name, event.timestamp
    return "", EPOCH
