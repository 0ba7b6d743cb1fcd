"""History propagation: a workflow hands its history to a child workflow and to an activity.

The checkout workflow validates a merchant, then calls a payment child workflow with
``propagation=PropagationScope.OWN_HISTORY``: the child reads the parent's recorded history
(``ctx.get_propagated_history()``) and pays only if the parent's validation completed. An
audit activity called with ``LINEAGE`` sees the parent's history and what the parent itself
received (nothing here: it is the root).

Run: ``python examples/history_propagation.py``.
"""

import json
import os
import tempfile

import treadle as wf

STORE = os.environ.get("TREADLE_STORE") or (
    f"sqlite:///{os.path.join(tempfile.gettempdir(), 'treadle-examples', 'history_propagation.db')}"
)

runtime = wf.WorkflowRuntime(STORE)


@runtime.activity
def validate_merchant(ctx, merchant_id: str) -> dict:
    return {"merchant_id": merchant_id, "valid": merchant_id.startswith("m-")}


@runtime.activity
def audit(ctx: wf.WorkflowActivityContext, _) -> str:
    history = ctx.get_propagated_history()
    chain = [w.name for w in history.get_workflows()]
    payment = history.get_workflows()[-1].get_last_child_workflow_by_name("pay")
    return f"audited {chain} ({history.scope.name}): pay completed={payment.completed}"


@runtime.workflow
def pay(ctx: wf.DaprWorkflowContext, _):
    history = ctx.get_propagated_history()
    try:
        validation = history.get_last_workflow_by_name("checkout").get_last_activity_by_name(
            "validate_merchant"
        )
    except wf.PropagationNotFoundError:
        return "refused: the caller did not validate the merchant"
    merchant = json.loads(validation.output)
    if not (validation.completed and merchant["valid"]):
        return "refused: invalid merchant"
    return f"paid {merchant['merchant_id']}"


@runtime.workflow
def checkout(ctx: wf.DaprWorkflowContext, merchant_id: str):
    yield ctx.call_activity(validate_merchant, input=merchant_id)
    paid = yield ctx.call_child_workflow(pay, propagation=wf.PropagationScope.OWN_HISTORY)
    audited = yield ctx.call_activity(audit, propagation=wf.PropagationScope.LINEAGE)
    return {"payment": paid, "audit": audited}


def main() -> None:
    with runtime, wf.DaprWorkflowClient(STORE) as client:
        for merchant in ("m-42", "x-13"):
            instance_id = client.schedule_new_workflow(checkout, input=merchant)
            state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=30)
            print(f"{merchant}: {state.runtime_status.name}: {state.serialized_output}")


if __name__ == "__main__":
    main()
