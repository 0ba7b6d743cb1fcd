"""History propagation through ``treadle serve`` with the SDK (run with the SDK venv's python).

    propagation.py --address HOST:PORT --middle-scope OWN_HISTORY|LINEAGE

Registers ``sdk_root`` -> ``sdk_middle`` (OWN_HISTORY) -> ``sdk_leaf`` (``--middle-scope``),
the activity ``sdk_validate``, and ``sdk_audit``, which ``sdk_middle`` calls with LINEAGE;
``sdk_middle`` also calls the server's in-process activity ``app_propagated_summary`` with
LINEAGE. Each callee returns what it saw in its propagated history. Runs ``sdk_root``, then
the server's in-process workflow ``app_propagates`` (which calls ``sdk_validate``, then
``sdk_audit`` with OWN_HISTORY), and prints one JSON line: {"status", "output", "app_status",
"app_output"}.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--middle-scope", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)
middle_scope = wf.PropagationScope[opts.middle_scope]


def summary(history: Any) -> Any:
    """The chain's (app, instance, workflow) and the outputs of its validate calls."""
    if history is None:
        return None
    return {
        "scope": history.scope.name,
        "chain": [[w.app_id, w.instance_id, w.name] for w in history.get_workflows()],
        "validated": [
            [a.completed, json.loads(a.output)]
            for w in history.get_workflows()
            for a in w.get_activities_by_name("sdk_validate")
        ],
    }


def sdk_validate(ctx: wf.WorkflowActivityContext, who: str) -> dict[str, Any]:
    return {"who": who}


def sdk_audit(ctx: wf.WorkflowActivityContext, _: Any) -> Any:
    return summary(ctx.get_propagated_history())


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def sdk_leaf(ctx: wf.DaprWorkflowContext, _: Any) -> Any:
    return summary(ctx.get_propagated_history())


def sdk_middle(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
    yield ctx.call_activity(sdk_validate, input="middle")
    seen = summary(ctx.get_propagated_history())
    leaf = yield ctx.call_child_workflow(
        sdk_leaf, input=None, instance_id="sdk-leaf", propagation=middle_scope
    )
    audit = yield ctx.call_activity(sdk_audit, input=None, propagation=wf.PropagationScope.LINEAGE)
    app = yield ctx.call_activity(
        "app_propagated_summary", input=None, propagation=wf.PropagationScope.LINEAGE
    )
    return {"middle": seen, "leaf": leaf, "audit": audit, "app": app}


def sdk_root(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
    yield ctx.call_activity(sdk_validate, input="root")
    result = yield ctx.call_child_workflow(
        sdk_middle,
        input=None,
        instance_id="sdk-middle",
        propagation=wf.PropagationScope.OWN_HISTORY,
    )
    return result


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_root, name="sdk_root")
runtime.register_workflow(sdk_middle, name="sdk_middle")
runtime.register_workflow(sdk_leaf, name="sdk_leaf")
runtime.register_activity(sdk_validate, name="sdk_validate")
runtime.register_activity(sdk_audit, name="sdk_audit")
runtime.start()
try:
    client = wf.DaprWorkflowClient(host=host, port=port)
    iid = client.schedule_new_workflow(workflow="sdk_root", input=None, instance_id="sdk-root")
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    app_iid = client.schedule_new_workflow(
        workflow="app_propagates", input=None, instance_id="app-propagates"
    )
    app_state = client.wait_for_workflow_completion(app_iid, timeout_in_seconds=60)
    print(
        json.dumps(
            {
                "status": state.runtime_status.name,
                "output": None
                if state.serialized_output is None
                else json.loads(state.serialized_output),
                "app_status": app_state.runtime_status.name,
                "app_output": None
                if app_state.serialized_output is None
                else json.loads(app_state.serialized_output),
            }
        ),
        flush=True,
    )
finally:
    runtime.shutdown()
