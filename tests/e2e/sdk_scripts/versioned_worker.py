"""An SDK worker with one release of versioned code (run with the SDK venv's python).

    versioned_worker.py --address HOST:PORT --release {1,2,3}

The releases of the workflow ``order`` (named versions) and ``patchy`` (patches):

- 1: ``order`` v1 (latest); ``patchy`` evaluates patch ``p1`` in its first turn.
- 2: ``order`` v1 and v2 (latest); ``patchy`` evaluates ``p1`` in its first turn and ``p2``
  after its event.
- 3: ``order`` v2 only (latest); ``patchy`` evaluates no patch.

Each workflow sets the custom status "waiting" before it waits for the event ``go``. Prints
``worker ready`` once its work-item stream is open; runs until killed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--release", type=int, choices=(1, 2, 3), required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


def step(ctx: wf.WorkflowActivityContext, label: str) -> str:
    return label


Steps = Generator[Any, Any, Any]


def order_v1(ctx: wf.DaprWorkflowContext, item: str) -> Steps:
    yield ctx.call_activity(step, input="reserve")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return f"{item} by v1"


def order_v2(ctx: wf.DaprWorkflowContext, item: str) -> Steps:
    yield ctx.call_activity(step, input="reserve")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return f"{item} by v2"


def patchy_p1(ctx: wf.DaprWorkflowContext, item: str) -> Steps:
    p1 = ctx.is_patched("p1")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return {"p1": p1}


def patchy_p1_p2(ctx: wf.DaprWorkflowContext, item: str) -> Steps:
    p1 = ctx.is_patched("p1")
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    p2 = ctx.is_patched("p2")
    if p2:
        yield ctx.call_activity(step, input="p2")
    return {"p1": p1, "p2": p2}


def patchy_none(ctx: wf.DaprWorkflowContext, item: str) -> Steps:
    ctx.set_custom_status("waiting")
    yield ctx.wait_for_external_event("go")
    return {}


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_activity(step, name="step")
if opts.release == 1:
    runtime.register_versioned_workflow(order_v1, name="order", version_name="v1", is_latest=True)
    runtime.register_workflow(patchy_p1, name="patchy")
elif opts.release == 2:
    runtime.register_versioned_workflow(order_v1, name="order", version_name="v1", is_latest=False)
    runtime.register_versioned_workflow(order_v2, name="order", version_name="v2", is_latest=True)
    runtime.register_workflow(patchy_p1_p2, name="patchy")
else:
    runtime.register_versioned_workflow(order_v2, name="order", version_name="v2", is_latest=True)
    runtime.register_workflow(patchy_none, name="patchy")
runtime.start()
print("worker ready", flush=True)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    runtime.shutdown()
    sys.exit(0)
