"""Task chaining: run activities one after another, each one's output the next one's input.

If a step fails, the workflow's ``except`` runs a compensating activity and re-raises, so the
instance ends FAILED with the error. The workflow and activities are the Dapr docs' code,
unchanged except for the import line.

The client and the runtime share a process and a store, so each start runs the workflow's
first step at once, committed with the new instance (see "Starts in the runtime's own
process" in the README).

Run: ``python examples/task_chaining.py`` (store: ``$TREADLE_STORE`` or a file in the temp dir).
"""

import os
import tempfile

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'task_chaining.db')}"
)


# fmt: off
# The Dapr docs' code, verbatim but for the import line (not reformatted, hence fmt: off):
# https://docs.dapr.io/developing-applications/building-blocks/workflow/workflow-patterns/
def task_chain_workflow(ctx: wf.DaprWorkflowContext, wf_input: int):
    try:
        result1 = yield ctx.call_activity(step1, input=wf_input)
        result2 = yield ctx.call_activity(step2, input=result1)
        result3 = yield ctx.call_activity(step3, input=result2)
    except Exception as e:
        yield ctx.call_activity(error_handler, input=str(e))
        raise
    return [result1, result2, result3]


def step1(ctx, activity_input):
    print(f'Step 1: Received input: {activity_input}.')
    # Do some work
    return activity_input + 1


def step2(ctx, activity_input):
    print(f'Step 2: Received input: {activity_input}.')
    # Do some work
    return activity_input * 2


def step3(ctx, activity_input):
    print(f'Step 3: Received input: {activity_input}.')
    # Do some work
    return activity_input ^ 2


def error_handler(ctx, error):
    print(f'Executing error handler: {error}.')
    # Do some compensating work
# fmt: on


def main() -> None:
    runtime = wf.WorkflowRuntime(STORE)
    runtime.register_workflow(task_chain_workflow)
    for activity in (step1, step2, step3, error_handler):
        runtime.register_activity(activity)

    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(task_chain_workflow, input=10)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}, result: {state.serialized_output}")

        # A string input makes step1 fail: the error handler runs, then the workflow fails.
        instance_id = client.schedule_new_workflow(task_chain_workflow, input="ten")
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.failure_details.message}")


if __name__ == "__main__":
    main()
