"""Dataclasses between an SDK worker and in-process functions (run with the SDK venv's python).

    payloads.py --address HOST:PORT

Registers ``sdk_quote`` (reads a dataclass's attributes, answers with a dataclass) and
``sdk_shop`` (sends a dataclass to the in-process ``app_quote``, reads its answer's
attributes); runs ``sdk_shop`` and the in-process ``app_shop``; prints one JSON line:
{"sdk": {status, output}, "app": {status, output}}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


@dataclasses.dataclass
class SdkOrder:
    item: str
    cost: int


@dataclasses.dataclass
class SdkQuote:
    item: str
    total: int


def sdk_quote(ctx: wf.WorkflowActivityContext, order: Any) -> SdkQuote:
    return SdkQuote(order.item, order.cost * 2)


def sdk_shop(ctx: wf.DaprWorkflowContext, order: Any) -> Generator[Any, Any, Any]:
    quote = yield ctx.call_activity("app_quote", input=SdkOrder(order.item, order.cost))
    return {"item": quote.item, "total": quote.total, "kind": type(quote).__name__}


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_shop, name="sdk_shop")
runtime.register_activity(sdk_quote, name="sdk_quote")
runtime.start()
try:
    client = wf.DaprWorkflowClient(host=host, port=port)
    out = {}
    for key, name in (("sdk", "sdk_shop"), ("app", "app_shop")):
        iid = client.schedule_new_workflow(workflow=name, input=SdkOrder("tea", 5))
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
        output = state.serialized_output
        out[key] = {
            "status": state.runtime_status.name,
            "output": None if output is None else json.loads(output),
        }
    print(json.dumps(out))
finally:
    runtime.shutdown()
