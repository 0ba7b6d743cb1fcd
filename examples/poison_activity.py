"""Poison work: an activity that kills its worker process on every attempt is parked.

``convert`` has a bug that kills its process (a crash in native code, the OOM killer, here a
SIGKILL). Each time its worker dies the task is taken again, as any activity of a dead worker
is; the runtime's ``max_activity_deliveries`` bounds that: the task handed out once more is
not run but failed with ``ActivityPoisoned``, which the workflow handles. ``healthy``
instances, started beside it, complete.

This script is the supervisor: it runs the worker (this file with ``worker``) in a child
process and starts it again each time it dies, as a process manager would.

Run: ``python examples/poison_activity.py``.
"""

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'poison.db')}"
)

runtime = wf.WorkflowRuntime(STORE, lease_s=2, max_activity_deliveries=3)


@runtime.activity
def convert(ctx: wf.WorkflowActivityContext, name: str) -> str:
    os.kill(os.getpid(), signal.SIGKILL)  # the bug
    return name.upper()


@runtime.activity
def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return 2 * n


@runtime.workflow
def import_file(ctx: wf.DaprWorkflowContext, name: str):
    try:
        return (yield ctx.call_activity(convert, input=name))
    except wf.TaskFailedError as e:
        return f"parked: {e.details.error_type}"


@runtime.workflow
def healthy(ctx: wf.DaprWorkflowContext, n: int):
    return (yield ctx.call_activity(double, input=n))


def _worker() -> "subprocess.Popen[bytes]":
    return subprocess.Popen([sys.executable, __file__, "worker"])


def _finished(state: "wf.WorkflowState | None") -> bool:
    return state is not None and state.runtime_status not in (
        wf.WorkflowStatus.PENDING,
        wf.WorkflowStatus.RUNNING,
    )


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with runtime:  # until the supervisor stops it (or convert kills it)
        stop.wait()
elif __name__ == "__main__":
    with wf.WorkflowClient(STORE) as client:
        bad = client.schedule_new_workflow(import_file, input="report.xls")
        good = [client.schedule_new_workflow(healthy, input=n) for n in (1, 2)]
        proc, deaths = _worker(), 0
        deadline = time.monotonic() + 50
        try:
            while time.monotonic() < deadline:
                if all(_finished(client.get_workflow_state(i)) for i in [bad, *good]):
                    break
                if proc.poll() is not None:
                    deaths += 1
                    proc = _worker()
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        print(f"The worker died {deaths} times.")
        for iid in good:
            state = client.get_workflow_state(iid)
            assert state is not None
            print(f"healthy: {state.runtime_status.name}: {state.serialized_output}")
        state = client.get_workflow_state(bad)
        assert state is not None
        print(f"import_file: {state.runtime_status.name}: {state.serialized_output}")
