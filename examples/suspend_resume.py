"""Suspend and resume: pause an instance; events raised meanwhile wait until it resumes.

The workflow waits for a "continue" event. The driver suspends it, raises the event while it
is suspended (the instance stays SUSPENDED and does not act on it), then resumes it: the
buffered event is delivered and the workflow completes with the event's data.

Run: ``python examples/suspend_resume.py``.
"""

import os
import tempfile
import time

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'suspend_resume.db')}"
)
PAUSE_S = 0.2 if os.environ.get("EXAMPLE_FAST") == "1" else 1.0

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def prepare(ctx, job: str) -> str:
    return f"{job} prepared"


@runtime.workflow
def job_workflow(ctx: wf.DaprWorkflowContext, job: str):
    prepared = yield ctx.call_activity(prepare, input=job)
    ctx.set_custom_status("waiting for 'continue'")
    data = yield ctx.wait_for_external_event("continue")
    return f"{prepared}, continued by {data['by']}"


def status(client: wf.DaprWorkflowClient, instance_id: str) -> str:
    return client.get_workflow_state(instance_id).runtime_status.name


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(job_workflow, input="report")
        client.wait_for_workflow_start(instance_id, timeout_in_seconds=10)

        client.suspend_workflow(instance_id)
        while status(client, instance_id) != "SUSPENDED":
            time.sleep(0.01)
        print(f"After suspend: {status(client, instance_id)}")

        client.raise_workflow_event(instance_id, "continue", data={"by": "alice"})
        time.sleep(PAUSE_S)  # give it time to (not) act on the event
        print(f"After raising the event while suspended: {status(client, instance_id)}")

        client.resume_workflow(instance_id)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"After resume: {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
