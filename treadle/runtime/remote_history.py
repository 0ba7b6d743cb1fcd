"""A remote workflow's stored history, kept between its turns, with what each turn reads.

The remote executor sends an SDK worker the run's whole history at every turn. Read from the
store and scanned anew at each turn (for the run's parent, its children, its recorded version
and patches), a chain of n steps cost O(n²). :class:`RemoteHistory` holds the events of a run
whose instance this runtime holds between turns, and keeps those facts up to date as each
committed turn appends its events.

Threads: whoever holds the engine lock (see :mod:`treadle.runtime.remote`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field

from treadle.core.history import (
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    HistoryEvent,
    OrchestratorStarted,
    ParentInfo,
    Propagation,
    SubOrchestrationInstanceCreated,
)
from treadle.core.records import record_class

__all__ = ["RemoteHistory"]


@record_class(frozen=False)
class RemoteHistory:
    """A run's stored history and what its turns read from it.

    Attributes:
        execution_id: the run.
        events: its stored events, in order.
        parent: the parent, for a child workflow.
        received: the history propagated to the run, if any.
        children: ids of the child instances it created.
        patches: every patch its turns recorded, in order.
        version_name: the version name its first turn recorded (None: unversioned).
        suspended: whether its events leave it suspended.
    """

    execution_id: str
    events: list[HistoryEvent] = field(default_factory=list)
    parent: ParentInfo | None = None
    received: Propagation | None = None
    children: list[str] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)
    version_name: str | None = None
    suspended: bool = False
    _turns: int = 0

    @classmethod
    def of(cls, execution_id: str, events: Iterable[HistoryEvent]) -> RemoteHistory:
        """The history of a run, from its stored events."""
        history = cls(execution_id)
        history.extend(events)
        return history

    def extend(self, events: Iterable[HistoryEvent]) -> None:
        """Append a committed turn's events."""
        for event in events:
            self.events.append(event)
            if isinstance(event, OrchestratorStarted):
                if self._turns == 0 and event.version is not None:
                    self.version_name = event.version.name
                if event.version is not None:
                    self.patches.extend(event.version.patches)
                self._turns += 1
            elif isinstance(event, ExecutionStarted):
                self.parent = event.parent
                self.received = event.propagated
            elif isinstance(event, SubOrchestrationInstanceCreated):
                self.children.append(event.instance_id)
            elif isinstance(event, ExecutionSuspended):
                self.suspended = True
            elif isinstance(event, ExecutionResumed):
                self.suspended = False
