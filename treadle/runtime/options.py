"""What every part of a running runtime reads: its settings, and whether it is stopping.

Threads: :class:`RuntimeOptions` is frozen, read by any thread. :class:`RunState` is
written by the thread that calls ``WorkflowRuntime.shutdown`` and read by every other one
(a bool and an event: no lock needed).
"""

from __future__ import annotations

import threading

from treadle.core.records import record_class

__all__ = ["RunState", "RuntimeOptions"]


@record_class
class RuntimeOptions:
    """A runtime's settings for one run (see :class:`~treadle.runtime.WorkflowRuntime`)."""

    owner: str
    """The lease owner this runtime claims work as."""
    lease_s: float
    """How long a claim lasts without renewal."""
    max_concurrent_activities: int
    """Activities that run at once in this process."""
    max_concurrent_workflows: int
    """Instances this runtime holds at once."""
    cache_size: int
    """Idle instances whose live generator is kept."""
    app_id: str = ""
    """The app whose work this runtime takes ("" for none)."""
    turn_limit_s: float | None = 30.0
    """How long a workflow turn may run before it is stopped and its instance failed (real
    seconds; None: no limit). See :mod:`treadle.runtime.watchdog`."""
    max_activity_deliveries: int | None = 10
    """How many times an activity task may be handed out without its result coming back
    before it is failed instead of run again (None: no limit). See
    :mod:`treadle.runtime.poison`."""

    @property
    def history_app_id(self) -> str:
        """The app id that tags the history this runtime's workflows propagate: its app, or
        ``"treadle"`` for a runtime of no app (the Dapr SDK refuses an empty one)."""
        return self.app_id or "treadle"


class RunState:
    """Whether the runtime is winding down (see the module)."""

    __slots__ = ("draining", "stopping")

    def __init__(self) -> None:
        self.draining = False
        """Take no new work; let the activities running finish and commit their results."""
        self.stopping = threading.Event()
        """Set when the runtime's threads must end."""
