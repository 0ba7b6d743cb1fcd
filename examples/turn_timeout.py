"""Turn timeout: workflow code that never yields is stopped, and the others go on.

``stuck`` has a bug: a loop that never ends between two steps. Workflow code runs in turns
(from one ``yield`` to the next) that must be quick; a turn that runs longer than the
runtime's ``turn_timeout`` is interrupted and its instance FAILED with ``TurnTimeout``, and
an error is logged naming it. ``healthy`` instances, started after it, complete meanwhile.
An activity that gives back NaN is refused (JSON has no NaN) rather than turned into null.

Run: ``python examples/turn_timeout.py``.
"""

import logging
import os
import tempfile
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'turn_timeout.db')}"
)
logging.basicConfig(level=logging.CRITICAL)  # (the watchdog's ERROR is expected here)

runtime = wf.WorkflowRuntime(STORE, turn_timeout=timedelta(seconds=1))


@runtime.activity
def fetch(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n * 10


@runtime.activity
def ratio(ctx: wf.WorkflowActivityContext, n: int) -> float:
    return float("nan") if n == 0 else 1 / n


@runtime.workflow
def stuck(ctx: wf.DaprWorkflowContext, n: int):
    value = yield ctx.call_activity(fetch, input=n)
    while value > 0:  # the bug: value never changes
        pass
    return value


@runtime.workflow
def healthy(ctx: wf.DaprWorkflowContext, n: int):
    value = yield ctx.call_activity(fetch, input=n)
    try:
        share = yield ctx.call_activity(ratio, input=n)
    except wf.TaskFailedError as e:
        share = f"refused: {e.details.error_type}"
    return {"value": value, "share": share}


if __name__ == "__main__":
    with runtime, wf.WorkflowClient(STORE) as client:
        bad = client.schedule_new_workflow(stuck, input=1)
        good = [client.schedule_new_workflow(healthy, input=n) for n in (0, 4)]
        for iid in good:
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            assert state is not None
            print(f"healthy: {state.runtime_status.name}: {state.serialized_output}")
        state = client.wait_for_workflow_completion(bad, timeout_in_seconds=30)
        assert state is not None and state.failure_details is not None
        print(f"stuck: {state.runtime_status.name}: {state.failure_details.error_type}")
