"""Fan-out/fan-in: run many activities in parallel, wait for all of them, aggregate.

``when_all`` waits for every task; the activities run at once on the runtime's thread pool, so
ten items that take 0.2 s each finish in about 0.2 s, not 2 s. The workflow and activities are
the Dapr docs' code with a shorter sleep (``EXAMPLE_FAST=1`` makes it 0).

Run: ``python examples/fan_out_fan_in.py``.
"""

import os
import tempfile
import time

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'fan_out_fan_in.db')}"
)
WORK_SECONDS = 0.0 if os.environ.get("EXAMPLE_FAST") == "1" else 0.2


def batch_processing_workflow(ctx: wf.DaprWorkflowContext, wf_input: int):
    # get a batch of N work items to process in parallel
    work_batch = yield ctx.call_activity(get_work_batch, input=wf_input)

    # schedule N parallel tasks to process the work items and wait for all to complete
    parallel_tasks = [
        ctx.call_activity(process_work_item, input=work_item) for work_item in work_batch
    ]
    outputs = yield wf.when_all(parallel_tasks)

    # aggregate the results and send them to another activity
    total = sum(outputs)
    yield ctx.call_activity(process_results, input=total)


def get_work_batch(ctx, batch_size: int) -> list[int]:
    return [i + 1 for i in range(batch_size)]


def process_work_item(ctx, work_item: int) -> int:
    print(f"Processing work item: {work_item}.")
    time.sleep(WORK_SECONDS)
    result = work_item * 2
    print(f"Work item {work_item} processed. Result: {result}.")
    return result


def process_results(ctx, final_result: int):
    print(f"Final result: {final_result}.")


def main() -> None:
    runtime = wf.WorkflowRuntime(STORE)
    runtime.register_workflow(batch_processing_workflow)
    for activity in (get_work_batch, process_work_item, process_results):
        runtime.register_activity(activity)

    with runtime, wf.DaprWorkflowClient(STORE) as client:
        started = time.monotonic()
        instance_id = client.schedule_new_workflow(batch_processing_workflow, input=10)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
        elapsed = time.monotonic() - started
        print(
            f"Workflow {state.runtime_status.name} in {elapsed:.2f} s "
            f"(10 items of {WORK_SECONDS} s each; {10 * WORK_SECONDS:.1f} s one after another)"
        )


if __name__ == "__main__":
    main()
