"""Monitor: poll a status on a schedule with a durable timer and ``continue_as_new``.

Each run checks the status once. While the service is unhealthy the workflow sleeps on a
durable timer and restarts itself with ``continue_as_new``, which keeps its history short no
matter how long it monitors. It finishes once the service is healthy.

Run: ``python examples/monitor.py``.
"""

import os
import tempfile
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'monitor.db')}"
)
INTERVAL = timedelta(seconds=0.05 if os.environ.get("EXAMPLE_FAST") == "1" else 0.5)

runtime = wf.WorkflowRuntime(STORE)
checks_made = 0  # the fake service becomes healthy at the third check


@runtime.activity
def check_status(ctx: wf.WorkflowActivityContext, service: str) -> str:
    global checks_made
    checks_made += 1
    status = "healthy" if checks_made >= 3 else "unhealthy"
    print(f"Check {checks_made}: {service} is {status}.")
    return status


@runtime.workflow
def status_monitor(ctx: wf.DaprWorkflowContext, job: dict):
    status = yield ctx.call_activity(check_status, input=job["service"])
    job = {**job, "checks": job["checks"] + 1, "status": status}
    ctx.set_custom_status(job)
    if status == "healthy":
        return job
    yield ctx.create_timer(ctx.current_utc_datetime + INTERVAL)
    ctx.continue_as_new(job)


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        job = {"service": "payments", "checks": 0, "status": "unknown"}
        instance_id = client.schedule_new_workflow(status_monitor, input=job)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")
        history = client.get_workflow_history(instance_id)
        print(f"The last run's history has {len(history)} events.")


if __name__ == "__main__":
    main()
