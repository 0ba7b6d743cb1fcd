"""An SDK worker of one app, for the multi-app ``treadle serve`` tests (run with the SDK
venv's python, against the sidecar of its app).

    apps.py --address HOST:PORT --role orders|shipping|billing

- orders: workflow ``order(n)`` calls the activity ``charge`` of app "billing" (retried once;
  its TaskFailedError is caught and reported) and the child workflow ``ship`` of app
  "shipping"; returns ``{"paid": ..., "shipped": ...}``.
- shipping: workflow ``ship(n)`` calls its own app's activity ``pack`` (no app id).
- billing: activity ``charge(n)``; with ``$FAIL_CHARGE=1`` it raises.

Prints ``worker ready`` once its work-item stream is open; runs until killed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--role", required=True, choices=["orders", "shipping", "billing"])
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)

ONE_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=2
)


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def order(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, dict[str, Any]]:
    try:
        paid = yield ctx.call_activity("charge", input=n, app_id="billing", retry_policy=ONE_RETRY)
    except wf.TaskFailedError as exc:
        paid = {"error": str(exc)}
    shipped = yield ctx.call_child_workflow("ship", input=n, app_id="shipping")
    return {"paid": paid, "shipped": shipped}


def ship(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, dict[str, Any]]:
    packed = yield ctx.call_activity("pack", input=n)
    return {"packed": packed, "by": "shipping"}


def pack(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n * 2


def charge(ctx: wf.WorkflowActivityContext, n: int) -> dict[str, Any]:
    if os.environ.get("FAIL_CHARGE") == "1":
        raise ValueError(f"card declined for {n}")
    return {"charged": n, "by": "billing"}


runtime = wf.WorkflowRuntime(host=host, port=port)
if opts.role == "orders":
    runtime.register_workflow(order, name="order")
elif opts.role == "shipping":
    runtime.register_workflow(ship, name="ship")
    runtime.register_activity(pack, name="pack")
else:
    runtime.register_activity(charge, name="charge")
runtime.start()
print("worker ready", flush=True)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    runtime.shutdown()
    sys.exit(0)
