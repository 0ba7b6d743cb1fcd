"""Child workflows: a workflow starts other workflows and waits for their results.

The parent processes an order batch by starting one child workflow per order (in parallel,
with ``when_all``). Each child runs its own steps and has its own history and instance id
(``<parent id>:<sequence>`` unless you pass one); the parent sees only each child's result.

Run: ``python examples/child_workflows.py``.
"""

import os
import tempfile

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'child_workflows.db')}"
)

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def check_stock(ctx, item: str) -> bool:
    return item != "unicorn"


@runtime.activity
def ship(ctx, item: str) -> str:
    print(f"Shipping {item}.")
    return f"{item}: shipped"


@runtime.workflow
def order_workflow(ctx: wf.DaprWorkflowContext, item: str):
    in_stock = yield ctx.call_activity(check_stock, input=item)
    if not in_stock:
        return f"{item}: out of stock"
    return (yield ctx.call_activity(ship, input=item))


@runtime.workflow
def batch_workflow(ctx: wf.DaprWorkflowContext, items: list[str]):
    children = [
        ctx.call_child_workflow(order_workflow, input=item, instance_id=f"{ctx.instance_id}-{item}")
        for item in items
    ]
    return (yield wf.when_all(children))


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        instance_id = client.schedule_new_workflow(
            batch_workflow, input=["book", "lamp", "unicorn"]
        )
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Workflow {state.runtime_status.name}: {state.serialized_output}")
        child = client.get_workflow_state(f"{instance_id}-lamp")
        print(f"Child {child.instance_id}: {child.runtime_status.name}")


if __name__ == "__main__":
    main()
