"""Events raised in a burst at an SDK workflow that continues as new with save_events=True
(run with the SDK venv's python).

    event_order.py --address HOST:PORT --events N --runs R

Registers ``sdk_collector``, which takes one ``item`` event per run and continues as new with
the list so far until it has N; starts it R times, raising N events (1 to N) at each right
after the start, and prints one JSON line per instance: {"status", "output"}.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--events", type=int, required=True)
args.add_argument("--runs", type=int, required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def sdk_collector(ctx: wf.DaprWorkflowContext, seen: list[Any]) -> Generator[Any, Any, Any]:
    item = yield ctx.wait_for_external_event("item")
    seen = [*seen, item]
    if len(seen) == opts.events:
        return seen
    ctx.continue_as_new(seen, save_events=True)
    return seen


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_collector, name="sdk_collector")
runtime.start()
try:
    client = wf.DaprWorkflowClient(host=host, port=port)
    ids = []
    for run in range(opts.runs):
        iid = client.schedule_new_workflow(
            workflow="sdk_collector", input=[], instance_id=f"collector-{run}"
        )
        # (from 1: the SDK's client sends a falsy payload, 0 say, as none at all)
        for n in range(1, opts.events + 1):
            client.raise_workflow_event(iid, "item", data=n)
        ids.append(iid)
    for iid in ids:
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
        output = state.serialized_output
        print(
            json.dumps(
                {
                    "status": state.runtime_status.name,
                    "output": None if output is None else json.loads(output),
                }
            ),
            flush=True,
        )
finally:
    runtime.shutdown()
