"""Retention: finished workflows are purged after a while, by a policy or on demand.

The store URL says to keep COMPLETED instances for a moment (seconds here, days in real life:
``?retention=COMPLETED:7d,FAILED:30d``) and FAILED ones for 30 days: whichever runtime of the
store holds the retention lease purges older ones continuously, in short batches. A purge by
filter (the client's ``purge_workflows``, ``treadle workflow purge --status COMPLETED
--older-than 7d``) needs no runtime at all.

Run: ``python examples/retention.py``.
"""

import os
import tempfile
import time
from datetime import datetime, timezone

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'retention.db')}"
)
KEEP = "0.5s" if os.environ.get("EXAMPLE_FAST") == "1" else "2s"

# The policy in the store URL (the same as retention=wf.RetentionPolicy(completed=...,
# failed=timedelta(days=30), interval=...) on the runtime): every runtime opened on this URL
# applies it.
POLICY = f"retention=COMPLETED:{KEEP},FAILED:30d,interval:0.2s"
runtime = wf.WorkflowRuntime(f"{STORE}{'&' if '?' in STORE else '?'}{POLICY}")


@runtime.workflow
def invoice(ctx: wf.DaprWorkflowContext, amount: int):
    if amount < 0:
        raise ValueError(f"a negative amount: {amount}")
    return f"invoiced {amount}"
    yield


def count(client: wf.DaprWorkflowClient, status: wf.WorkflowStatus) -> int:
    return len(client.list_workflows(status=status, page_size=1000).states)


def main() -> None:
    completed, failed = wf.WorkflowStatus.COMPLETED, wf.WorkflowStatus.FAILED
    with wf.DaprWorkflowClient(STORE) as client:
        client.purge_workflows()  # (a fresh start when the example runs again)
        with runtime:
            ids = [client.schedule_new_workflow(invoice, input=n) for n in (10, 20, 30, -1)]
            for iid in ids:
                client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
            done, lost = count(client, completed), count(client, failed)
            print(f"Finished: {done} COMPLETED, {lost} FAILED.")
            deadline = time.monotonic() + 30
            while count(client, completed) and time.monotonic() < deadline:
                time.sleep(0.1)
            print(
                f"After the retention period: {count(client, completed)} COMPLETED, "
                f"{count(client, failed)} FAILED (kept 30 days)."
            )
        # no runtime runs now: a purge by filter works all the same
        now = datetime.now(timezone.utc)
        would = client.purge_workflows(status=failed, finished_before=now, dry_run=True)
        print(f"A dry run would purge {would} FAILED instance(s).")
        print(f"Purged {client.purge_workflows(status=failed)} FAILED instance(s).")


if __name__ == "__main__":
    main()
