"""The hook through which workflows and activities run in another process (SDK workers).

``treadle serve`` implements :class:`RemoteWorkers` over the durabletask gRPC work-item
stream: the runtime hands it the turns of workflows and the activities it has no local
function for, and the server reports each outcome back with
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_turn` and
:meth:`~treadle.runtime.WorkflowRuntime.complete_remote_activity`. Commits go through the
same code path as local workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from treadle.core.history import HistoryEvent
from treadle.store.base import ActivityWorkItem


@dataclass(frozen=True, slots=True)
class RemoteTurn:
    """A workflow turn to run in a remote worker.

    Attributes:
        instance_id: the instance.
        execution_id: its current run.
        name: the workflow name.
        past_events: the run's stored history.
        new_events: this turn's events (OrchestratorStarted first).
    """

    instance_id: str
    execution_id: str
    name: str
    past_events: Sequence[HistoryEvent]
    new_events: Sequence[HistoryEvent]


class RemoteWorkers(Protocol):
    """Where the runtime sends work it cannot run in-process."""

    def submit_orchestration(self, turn: RemoteTurn) -> None:
        """Queue a workflow turn for a remote worker (returns at once)."""
        ...

    def submit_activity(self, item: ActivityWorkItem) -> None:
        """Queue an activity for a remote worker (returns at once)."""
        ...
