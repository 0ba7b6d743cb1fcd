"""The SDK's asyncio client against ``treadle serve`` (run with the SDK venv's python).

    aio_client.py --address HOST:PORT

Registers ``sdk_aio_wait`` (waits for an ``approval`` event, returns it); with the SDK's
``dapr.ext.workflow.aio.DaprWorkflowClient`` starts it, pauses, resumes, raises the event,
waits for the end, starts another and terminates it, purges both; prints one JSON line with
what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf
from dapr.ext.workflow.aio import DaprWorkflowClient

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


def sdk_aio_wait(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, Any]:
    approval = yield ctx.wait_for_external_event("approval")
    return {"approved_by": approval}


async def scenario() -> dict[str, Any]:
    client = DaprWorkflowClient(host=host, port=port)
    seen: dict[str, Any] = {}
    iid = await client.schedule_new_workflow(workflow="sdk_aio_wait", instance_id="aio-1")
    started = await client.wait_for_workflow_start(iid, timeout_in_seconds=30)
    seen["started"] = started.runtime_status.name
    await client.pause_workflow(iid)
    seen["paused"] = (await client.get_workflow_state(iid)).runtime_status.name
    await client.resume_workflow(iid)
    seen["resumed"] = (await client.get_workflow_state(iid)).runtime_status.name
    await client.raise_workflow_event(iid, "approval", data="alice")
    done = await client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
    seen["done"] = [done.runtime_status.name, json.loads(done.serialized_output)]
    other = await client.schedule_new_workflow(workflow="sdk_aio_wait", instance_id="aio-2")
    await client.wait_for_workflow_start(other, timeout_in_seconds=30)
    await client.terminate_workflow(other, output="stopped")
    ended = await client.wait_for_workflow_completion(other, timeout_in_seconds=30)
    seen["terminated"] = [ended.runtime_status.name, json.loads(ended.serialized_output)]
    await client.purge_workflow(iid)
    await client.purge_workflow(other)
    seen["purged"] = [await client.get_workflow_state(i) is None for i in (iid, other)]
    return seen


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_aio_wait, name="sdk_aio_wait")
runtime.start()
try:
    print(json.dumps(asyncio.run(scenario())))
finally:
    runtime.shutdown()
