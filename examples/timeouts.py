"""Timeouts and cancellation: bound an activity call and a whole workflow in time.

``fetch_quote`` asks a slow supplier: its first attempt hangs, so the call's ``timeout=`` fails
it with a TimeoutError, the retry policy tries again, and the second attempt answers. The hung
attempt sees ``ctx.is_cancelled`` turn true and gives up; its result would be dropped.

The timeout counts from when a worker takes the attempt (start-to-close), not from when the
workflow scheduled it: ``labels`` prints three labels on a printer queue that runs one at a
time, 0.5 s each, with a 1 s timeout per label. The third waits 1 s for the printer, then
prints in 0.5 s: none of them times out.

``nightly_report`` is started with ``timeout=``: it waits for an approval that never comes, so
when the timeout passes the run fails with a TimeoutError, and its running activity
(``crunch``) is told to stop, as it is when an instance is terminated.

Run: ``python examples/timeouts.py``.
"""

import os
import tempfile
import threading
import time
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'timeouts.db')}"
)

runtime = wf.WorkflowRuntime(STORE)
quote_attempts = 0
crunch_stopped = threading.Event()


def wait_until_cancelled(ctx: wf.WorkflowActivityContext, limit_s: float) -> bool:
    """Work in small pieces, checking between them whether to stop."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if ctx.is_cancelled:
            return True
        time.sleep(0.05)  # a piece of work
    return False


@runtime.activity
def fetch_quote(ctx: wf.WorkflowActivityContext, item: str) -> str:
    global quote_attempts
    quote_attempts += 1
    attempt = quote_attempts
    if attempt == 1 and wait_until_cancelled(ctx, 10):
        print(f"Attempt {attempt} for {item} was told to stop.")
        return "never recorded"
    print(f"Attempt {attempt} for {item} answered.")
    return f"{item}: 12.50 EUR (attempt {attempt})"


@runtime.activity
def crunch(ctx: wf.WorkflowActivityContext, _: None) -> None:
    if wait_until_cancelled(ctx, 10):
        print("crunch was told to stop.")
        crunch_stopped.set()


printer = wf.Queue("printer", concurrency=1)  # one label at a time, across all workers


@runtime.activity(queue=printer)
def print_label(ctx: wf.WorkflowActivityContext, item: str) -> str:
    time.sleep(0.5)  # printing
    return f"label for {item}"


@runtime.workflow
def labels(ctx: wf.DaprWorkflowContext, items: list[str]):
    calls = [ctx.call_activity(print_label, input=i, timeout=timedelta(seconds=1)) for i in items]
    return (yield wf.when_all(calls))


@runtime.workflow
def quote(ctx: wf.DaprWorkflowContext, item: str):
    return (
        yield ctx.call_activity(
            fetch_quote,
            input=item,
            timeout=timedelta(seconds=1),
            retry_policy=wf.RetryPolicy(
                first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3
            ),
        )
    )


@runtime.workflow
def nightly_report(ctx: wf.DaprWorkflowContext, _: None):
    yield wf.when_all([ctx.call_activity(crunch), ctx.wait_for_external_event("approved")])
    return "published"


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        iid = client.schedule_new_workflow(quote, input="lamp")
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        print(f"Quote {state.runtime_status.name}: {state.serialized_output}")

        iid = client.schedule_new_workflow(labels, input=["lamp", "desk", "chair"])
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        print(f"Labels {state.runtime_status.name}: {state.serialized_output}")

        iid = client.schedule_new_workflow(nightly_report, timeout=timedelta(seconds=1))
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        print(f"Report {state.runtime_status.name}: {state.failure_details.error_type}")
        crunch_stopped.wait(10)


if __name__ == "__main__":
    main()
