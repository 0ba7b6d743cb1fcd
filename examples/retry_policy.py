"""Retry policy: retry a failing activity durably, with exponential backoff.

``flaky_charge`` fails twice, then succeeds; a ``wf.RetryPolicy`` of up to 5 attempts makes the
call succeed on the third. The waits between attempts are durable timers, so retries survive
a crash. ``always_fails`` exhausts its 2 attempts and the workflow sees ``wf.TaskFailedError``.

Run: ``python examples/retry_policy.py``.
"""

import os
import tempfile
from collections import Counter
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'retry_policy.db')}"
)
FIRST_RETRY = timedelta(seconds=0.01 if os.environ.get("EXAMPLE_FAST") == "1" else 0.2)

runtime = wf.WorkflowRuntime(STORE)
attempts: Counter[str] = Counter()  # task_execution_id is the same for every retry of a call


@runtime.activity
def flaky_charge(ctx: wf.WorkflowActivityContext, amount: int) -> str:
    attempts[ctx.task_execution_id] += 1
    attempt = attempts[ctx.task_execution_id]
    print(f"Charging {amount}: attempt {attempt}.")
    if attempt < 3:
        raise ConnectionError(f"payment service unavailable (attempt {attempt})")
    return f"charged {amount} after {attempt} attempts"


@runtime.activity
def always_fails(ctx: wf.WorkflowActivityContext, _: None) -> None:
    raise ValueError("this never works")


@runtime.workflow
def payment_workflow(ctx: wf.DaprWorkflowContext, amount: int):
    policy = wf.RetryPolicy(
        first_retry_interval=FIRST_RETRY, backoff_coefficient=2.0, max_number_of_attempts=5
    )
    charged = yield ctx.call_activity(flaky_charge, input=amount, retry_policy=policy)
    try:
        yield ctx.call_activity(
            always_fails,
            retry_policy=wf.RetryPolicy(first_retry_interval=FIRST_RETRY, max_number_of_attempts=2),
        )
    except wf.TaskFailedError as error:
        return {"charge": charged, "gave_up": str(error)}
    return {"charge": charged}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(payment_workflow, input=42)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
