"""What ``treadle serve`` implements to run the runtime's work in SDK workers.

:class:`RemoteWorkers` is where a runtime sends the workflow turns (:class:`RemoteTurn`) and
the activities it has no local function for; the server reports each outcome back to the
runtime (see :mod:`treadle.runtime.remote`, which keeps the turns out until they answer).

Threads: any. Plain data and a protocol, no state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from treadle.core.history import HistoryEvent
from treadle.core.records import record_class
from treadle.store.base import ActivityWorkItem

__all__ = ["Completion", "RemoteTurn", "RemoteWorkers"]


@record_class
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

    def has_workers(self) -> bool:
        """Whether a remote worker is connected to take work now."""
        ...

    def withdraw_orchestration(self, instance_id: str) -> bool:
        """Take back the instance's queued turn if no worker has received it yet (it is then
        never sent); False if a worker has it, or there is none."""
        ...


Completion = tuple[ActivityWorkItem, HistoryEvent]
"""An activity's result: the activity and its TaskCompleted or TaskFailed."""
