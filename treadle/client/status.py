"""The status of a workflow instance as the Dapr API names it, and its engine equivalents.

The engine has two statuses the Dapr API does not: CONTINUED_AS_NEW (reported as RUNNING) and
CANCELED (reported as TERMINATED). :func:`reported` maps an engine status onto the one the API
shows; :func:`matching` expands a filter of shown statuses into every engine status behind them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from treadle.core.history import OrchestrationStatus
from treadle.errors import InvalidInputError

__all__ = ["WorkflowStatus", "matching", "reported"]


class WorkflowStatus(enum.Enum):
    """The runtime status of a workflow instance (the Dapr SDK's names)."""

    UNKNOWN = 0
    RUNNING = 1
    COMPLETED = 2
    FAILED = 3
    TERMINATED = 4
    PENDING = 5
    SUSPENDED = 6
    STALLED = 7

    @classmethod
    def from_orchestration_status(cls, status: OrchestrationStatus) -> WorkflowStatus:
        """Map the engine's status onto the Dapr one."""
        return _STATUS_MAP.get(status, cls.UNKNOWN)

    def to_orchestration_status(self) -> OrchestrationStatus:
        """Map the Dapr status onto the engine's one.

        Raises:
            InvalidInputError: UNKNOWN has no engine equivalent.
        """
        for engine, dapr in _STATUS_MAP.items():
            if dapr is self and engine not in _REPORTED_AS_ANOTHER:
                return engine
        raise InvalidInputError(f"status {self.name} cannot be used as a filter")


# engine statuses the Dapr API reports under another one's name
_REPORTED_AS_ANOTHER = {
    OrchestrationStatus.CONTINUED_AS_NEW: OrchestrationStatus.RUNNING,
    OrchestrationStatus.CANCELED: OrchestrationStatus.TERMINATED,
}

_STATUS_MAP = {
    OrchestrationStatus.RUNNING: WorkflowStatus.RUNNING,
    OrchestrationStatus.CONTINUED_AS_NEW: WorkflowStatus.RUNNING,
    OrchestrationStatus.COMPLETED: WorkflowStatus.COMPLETED,
    OrchestrationStatus.FAILED: WorkflowStatus.FAILED,
    OrchestrationStatus.CANCELED: WorkflowStatus.TERMINATED,
    OrchestrationStatus.TERMINATED: WorkflowStatus.TERMINATED,
    OrchestrationStatus.PENDING: WorkflowStatus.PENDING,
    OrchestrationStatus.SUSPENDED: WorkflowStatus.SUSPENDED,
    OrchestrationStatus.STALLED: WorkflowStatus.STALLED,
}


def reported(status: OrchestrationStatus) -> OrchestrationStatus:
    """The engine status as the Dapr API reports it (CONTINUED_AS_NEW as RUNNING, CANCELED as
    TERMINATED; every other one as itself)."""
    return _REPORTED_AS_ANOTHER.get(status, status)


def matching(statuses: Iterable[OrchestrationStatus]) -> tuple[OrchestrationStatus, ...]:
    """A filter of reported statuses with the engine statuses reported under them added
    (RUNNING brings CONTINUED_AS_NEW, TERMINATED brings CANCELED), in a defined order."""
    wanted = list(dict.fromkeys(statuses))
    extra = [engine for engine, shown in _REPORTED_AS_ANOTHER.items() if shown in wanted]
    return tuple(dict.fromkeys([*wanted, *extra]))
