"""Pause, resume and terminate through ``treadle serve`` with the SDK (run with the SDK venv's
python).

    control.py --address HOST:PORT

Registers ``sdk_waiter`` (waits for the event ``go``) and ``sdk_parent`` (calls
``sdk_waiter`` as the child ``ctl-child``); starts ``ctl-1`` (a waiter) and ``ctl-parent``,
then pauses and resumes ``ctl-1``, reading its status right after each call, and prints one
JSON line: {"after_pause", "after_resume"}. Then its worker shuts down, leaving both
instances running with no worker for them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def sdk_waiter(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
    return (yield ctx.wait_for_external_event("go"))


def sdk_parent(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
    return (yield ctx.call_child_workflow(sdk_waiter, input=None, instance_id="ctl-child"))


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_waiter, name="sdk_waiter")
runtime.register_workflow(sdk_parent, name="sdk_parent")
runtime.start()
try:
    client = wf.DaprWorkflowClient(host=host, port=port)
    client.schedule_new_workflow(workflow="sdk_waiter", input=None, instance_id="ctl-1")
    client.schedule_new_workflow(workflow="sdk_parent", input=None, instance_id="ctl-parent")
    for iid in ("ctl-1", "ctl-parent"):
        client.wait_for_workflow_start(iid, timeout_in_seconds=30)
    client.pause_workflow("ctl-1")
    after_pause = client.get_workflow_state("ctl-1").runtime_status.name
    client.resume_workflow("ctl-1")
    after_resume = client.get_workflow_state("ctl-1").runtime_status.name
    client.wait_for_workflow_start("ctl-child", timeout_in_seconds=30)
    print(json.dumps({"after_pause": after_pause, "after_resume": after_resume}), flush=True)
finally:
    runtime.shutdown()
