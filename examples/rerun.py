"""Rerun from an event: fix a bad step of a finished workflow without redoing the good ones.

A three-step pipeline fails at its last step because of bad input. Instead of starting over,
``rerun_workflow_from_event`` starts a new instance that keeps the results recorded before
that step and runs the step again with a corrected input; the earlier, expensive steps are not
run again. (``treadle workflow rerun ID --from-event N --input JSON`` does the same.)

Run: ``python examples/rerun.py``.
"""

import os
import tempfile

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'rerun.db')}"
)

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def extract(ctx: wf.WorkflowActivityContext, source: str) -> list[int]:
    print(f"Extracting {source} (slow and costly).")
    return [3, 1, 2]


@runtime.activity
def transform(ctx: wf.WorkflowActivityContext, rows: list[int]) -> list[int]:
    print("Transforming.")
    return sorted(rows)


@runtime.activity
def load(ctx: wf.WorkflowActivityContext, target: str) -> str:
    if not target.startswith("db://"):
        raise ValueError(f"not a database URL: {target!r}")
    print(f"Loading into {target}.")
    return f"loaded into {target}"


@runtime.workflow
def pipeline(ctx: wf.DaprWorkflowContext, job: dict):
    rows = yield ctx.call_activity(extract, input=job["source"])
    rows = yield ctx.call_activity(transform, input=rows)
    loaded = yield ctx.call_activity(load, input=job["target"])
    return {"rows": rows, "load": loaded}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        job = {"source": "s3://bucket/day.csv", "target": "warehouse"}  # the target is wrong
        first = client.schedule_new_workflow(pipeline, input=job)
        state = client.wait_for_workflow_completion(first, timeout_in_seconds=30)
        print(f"First run {state.runtime_status.name}: {state.failure_details.message}")
        load_step = next(
            e.event_id
            for e in client.get_workflow_history(first)
            if e.KIND == "TaskScheduled" and getattr(e, "name", "") == "load"
        )
        print(f"Rerunning from event {load_step} (load) with a corrected target.")
        second = client.rerun_workflow_from_event(first, load_step, input="db://warehouse")
        state = client.wait_for_workflow_completion(second, timeout_in_seconds=30)
        print(f"Rerun {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
