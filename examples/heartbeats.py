"""Heartbeats: a long activity reports progress, and a stuck attempt is taken over from there.

``import_rows`` imports 10 batches, calling ``ctx.heartbeat({"done": n})`` after each. Its
first attempt gets stuck after batch 3 (as a worker that hangs, or dies, would): it stops
heartbeating. The call's ``heartbeat_timeout=`` of 1 second lets a worker take the task over
one second after the last heartbeat, instead of when the whole lease (30 s here) runs out; the
new attempt reads the last heartbeat's details in ``ctx.heartbeat_details`` and goes on from
batch 4. The stuck attempt, on its next heartbeat, finds it was taken over
(``ctx.is_cancelled``) and gives up; its result is not recorded.

Run: ``python examples/heartbeats.py``.
"""

import os
import tempfile
import threading
import time
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'heartbeats.db')}"
)

runtime = wf.WorkflowRuntime(STORE, lease_s=30)
stuck_once = threading.Event()
gave_up = threading.Event()


@runtime.activity
def import_rows(ctx: wf.WorkflowActivityContext, batches: int) -> str:
    done = (ctx.heartbeat_details or {}).get("done", 0)
    print(f"Attempt starts after batch {done}.")
    first = done
    while done < batches:
        if done == 3 and not stuck_once.is_set():
            stuck_once.set()
            print("Stuck after batch 3 (no more heartbeats).")
            time.sleep(3)  # longer than the heartbeat timeout
            ctx.heartbeat({"done": done})  # too late: another attempt has the task
            if ctx.is_cancelled:
                print("The stuck attempt was taken over; it gives up.")
                gave_up.set()
                return "never recorded"
        time.sleep(0.05)  # import one batch
        done += 1
        ctx.heartbeat({"done": done})
    return f"imported batches {first + 1} to {batches} in this attempt"


@runtime.workflow
def nightly_import(ctx: wf.DaprWorkflowContext, batches: int):
    return (
        yield ctx.call_activity(import_rows, input=batches, heartbeat_timeout=timedelta(seconds=1))
    )


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        started = time.monotonic()
        iid = client.schedule_new_workflow(nightly_import, input=10)
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        took = time.monotonic() - started
        print(f"Import {state.runtime_status.name}: {state.serialized_output}")
        print(f"Taken over long before the lease: {took < 15}.")
        gave_up.wait(10)


if __name__ == "__main__":
    main()
