"""Start a workflow with the SDK client and wait for it (run with the SDK venv's python).

    client.py --address HOST:PORT --name NAME [--input JSON] [--id ID] [--timeout S]

Prints one JSON line: {"instance_id", "status", "output", "failure"}.
"""

from __future__ import annotations

import argparse
import json

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--name", required=True)
args.add_argument("--input", default="null")
args.add_argument("--id", default=None)
args.add_argument("--timeout", type=float, default=30)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)

client = wf.DaprWorkflowClient(host=host, port=port)
iid = client.schedule_new_workflow(
    workflow=opts.name, input=json.loads(opts.input), instance_id=opts.id
)
state = client.wait_for_workflow_completion(iid, timeout_in_seconds=opts.timeout)
failure = state.failure_details
output = state.serialized_output
print(
    json.dumps(
        {
            "instance_id": iid,
            "status": state.runtime_status.name,
            "output": None
            if state.serialized_output is None
            else json.loads(state.serialized_output),
            "failure": None if failure is None else f"{failure.error_type}: {failure.message}",
        }
    ),
    flush=True,
)
