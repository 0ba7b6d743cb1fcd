"""Every workflow operation of the SDK client, against ``treadle serve`` with an SDK worker
(run with the SDK venv's python), for the metrics tests.

    operations.py --address HOST:PORT

Registers ``sdk_ops_flow`` (waits for the event ``go``, then calls ``sdk_ops_step``, which
fails on a negative input). Starts ``ops-ok`` (3), ``ops-bad`` (-1) and ``ops-end`` (0);
pauses and resumes ``ops-ok``; raises ``go`` to ``ops-ok``, ``ops-bad`` and to an instance
that does not exist; terminates ``ops-end``; reads ``ops-ok``; purges ``ops-end``. Prints
one JSON line: each instance's final status, and whether the raise to nobody failed.
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


def sdk_ops_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    if x < 0:
        raise ValueError(f"cannot take {x}")
    return x * 2


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def sdk_ops_flow(ctx: wf.DaprWorkflowContext, x: int) -> Generator[Any, Any, int]:
    go: int = yield ctx.wait_for_external_event("go")
    doubled: int = yield ctx.call_activity(sdk_ops_step, input=x * go)
    return doubled


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_ops_flow, name="sdk_ops_flow")
runtime.register_activity(sdk_ops_step, name="sdk_ops_step")
runtime.start()
client = wf.DaprWorkflowClient(host=host, port=port)
for iid, x in (("ops-ok", 3), ("ops-bad", -1), ("ops-end", 0)):
    client.schedule_new_workflow(sdk_ops_flow, input=x, instance_id=iid)
client.wait_for_workflow_start("ops-ok", timeout_in_seconds=60)
client.pause_workflow("ops-ok")
client.resume_workflow("ops-ok")
client.raise_workflow_event("ops-ok", "go", data=1)
client.raise_workflow_event("ops-bad", "go", data=1)
try:
    client.raise_workflow_event("ops-nobody", "go", data=1)
    nobody_failed = False
except Exception:
    nobody_failed = True
client.terminate_workflow("ops-end")
final = {
    iid: client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    for iid in ("ops-ok", "ops-bad", "ops-end")
}
state = client.get_workflow_state("ops-ok")
client.purge_workflow("ops-end")
out = {iid: s.runtime_status.name if s else None for iid, s in final.items()}
out["read"] = state.runtime_status.name if state else None
out["nobody_failed"] = nobody_failed
print(json.dumps(out), flush=True)
runtime.shutdown()
