"""Queues and a bounded fan-out: limits that hold across every worker, and many calls with
few in flight.

``send_mail`` may run at most 2 at once and start at most 5 times a second, however many
workers run it (the store counts for all of them); the workflow sends 12 mails, and the
activity itself records how many ran at once. ``map_activity`` then runs 20 lookups with at
most 3 in flight, from inside the workflow, deterministically. The queue's limits live in the
store, so every worker claims under the same ones; the example shows them, and pins others as
an operator would (``treadle queue set mail --concurrency 1``).

Run: ``python examples/queues.py``.
"""

import os
import tempfile
import threading
import time
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'queues.db')}"
)

runtime = wf.WorkflowRuntime(STORE, max_concurrent_activities=16)
lock = threading.Lock()
running = {"mail": 0, "lookup": 0}
peak = {"mail": 0, "lookup": 0}


def _enter(kind: str) -> None:
    with lock:
        running[kind] += 1
        peak[kind] = max(peak[kind], running[kind])


def _leave(kind: str) -> None:
    with lock:
        running[kind] -= 1


@runtime.activity(queue=wf.Queue("mail", concurrency=2, rate_limit=5, period=timedelta(seconds=1)))
def send_mail(ctx: wf.WorkflowActivityContext, to: str) -> str:
    _enter("mail")
    time.sleep(0.05)
    _leave("mail")
    return f"mailed {to}"


@runtime.activity
def lookup(ctx: wf.WorkflowActivityContext, n: int) -> int:
    _enter("lookup")
    time.sleep(0.02)
    _leave("lookup")
    return n * n


@runtime.workflow
def newsletter(ctx: wf.DaprWorkflowContext, readers: list):
    sent = yield wf.when_all([ctx.call_activity(send_mail, input=r) for r in readers])
    squares = yield from ctx.map_activity(lookup, range(20), max_concurrent=3)
    return {"sent": len(sent), "squares": sum(squares)}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        began = time.monotonic()
        instance_id = client.schedule_new_workflow(
            newsletter, input=[f"reader-{n}@example.com" for n in range(12)]
        )
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
        took = time.monotonic() - began
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")
        print(
            f"Mails running at once, at most: {peak['mail']}; within the limit of 2: "
            f"{peak['mail'] <= 2}."
        )
        print(f"12 mails at 5 a second took {'2 s or more' if took >= 2.0 else 'less'}.")
        print(
            f"Lookups in flight at once, at most: {peak['lookup']}; within max_concurrent=3: "
            f"{peak['lookup'] <= 3}."
        )

        # The limits live in the store, for every worker: the last worker to start wrote them
        # (this one). An operator may pin others for all workers at once (treadle queue set).
        (mail,) = client.list_queue_limits()
        mine = mail.updated_by == runtime.owner
        print(
            f"The store keeps queue {mail.queue.name!r} at concurrency "
            f"{mail.queue.concurrency}, registered by this worker: {mine}."
        )
        client.set_queue_limits(wf.Queue("mail", concurrency=1, rate_limit=5))
        (mail,) = client.list_queue_limits()
        print(f"Pinned for every worker: concurrency {mail.queue.concurrency} ({mail.pinned}).")
        client.release_queue_limits("mail")  # the next worker's registration sets them again


if __name__ == "__main__":
    main()
