"""Testing workflows: replay saved histories, and run workflows on a time-skipping clock.

- :class:`Replayer` replays histories exported with ``treadle workflow export`` against
  today's workflow code and reports the first divergence of each (``treadle replay`` is the
  same from the command line).
- :class:`WorkflowTestEnvironment` runs registered workflows in this process, on a memory
  store and a virtual clock that jumps to the next timer whenever nothing else can go on.

::

    from treadle.testing import Replayer, WorkflowTestEnvironment

    with WorkflowTestEnvironment() as env:
        env.register_workflow(order); env.register_activity(charge)
        iid = env.client.schedule_new_workflow(order, input={"id": 1})
        state = env.client.wait_for_workflow_completion(iid)      # timers skip

    result = Replayer([order]).replay(open("run.json").read())
    assert result.ok, result.divergence
"""

from treadle.core.history_file import SavedHistory, dump_history, load_history
from treadle.testing.environment import DEFAULT_START, TestWorkflowClient, WorkflowTestEnvironment
from treadle.testing.replayer import Divergence, HistoryReplay, Replayer, ReplayReport

__all__ = [
    "DEFAULT_START",
    "Divergence",
    "HistoryReplay",
    "ReplayReport",
    "Replayer",
    "SavedHistory",
    "TestWorkflowClient",
    "WorkflowTestEnvironment",
    "dump_history",
    "load_history",
]
