"""External events: wait for a human approval, or give up when a durable timer fires first.

``wait_for_external_event("approval")`` and ``create_timer`` race in ``when_any``; whichever
completes first wins. The driver approves the first order with ``raise_workflow_event`` and lets
the second one time out.

Run: ``python examples/external_events.py``.
"""

import os
import tempfile
from datetime import timedelta

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'external_events.db')}"
)
SHORT_TIMEOUT_S = 0.1 if os.environ.get("EXAMPLE_FAST") == "1" else 1.0

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def place_order(ctx: wf.WorkflowActivityContext, order: dict) -> str:
    print(f"Placing order {order['id']} ({order['item']}).")
    return f"order {order['id']} placed"


@runtime.workflow
def approval_workflow(ctx: wf.DaprWorkflowContext, order: dict):
    approval = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=order["timeout_s"]))
    winner = yield wf.when_any([approval, timeout])
    if winner is timeout:
        return f"order {order['id']} cancelled: no approval in time"
    decision = approval.get_result()
    if not decision["approved"]:
        return f"order {order['id']} rejected by {decision['approver']}"
    placed = yield ctx.call_activity(place_order, input=order)
    return f"{placed}, approved by {decision['approver']}"


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        order = {"id": "A-1", "item": "laptop", "timeout_s": 30}
        instance_id = client.schedule_new_workflow(approval_workflow, input=order)
        client.wait_for_workflow_start(instance_id, timeout_in_seconds=10)
        client.raise_workflow_event(
            instance_id, "approval", data={"approved": True, "approver": "alice"}
        )
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Approved: {state.serialized_output}")

        order = {"id": "B-2", "item": "yacht", "timeout_s": SHORT_TIMEOUT_S}
        instance_id = client.schedule_new_workflow(approval_workflow, input=order)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
        print(f"Timed out: {state.serialized_output}")


if __name__ == "__main__":
    main()
