"""An SDK worker for the held-turn tests (run with the SDK venv's python).

    held.py --address HOST:PORT [--workers N]

Registers ``held_fan`` (a fan-out of n squares, their total, then an external event ``go``
and one more square) and ``held_chain`` (n sequential increments); runs until killed.
Prints ``worker ready`` once its work-item stream is open.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


def held_square(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * x


def held_total(ctx: wf.WorkflowActivityContext, xs: list[int]) -> int:
    return sum(xs)


def held_increment(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x + 1


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def held_fan(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, list[int]]:
    parts = yield wf.when_all([ctx.call_activity(held_square, input=i) for i in range(1, n + 1)])
    total = yield ctx.call_activity(held_total, input=parts)
    go = yield ctx.wait_for_external_event("go")
    last = yield ctx.call_activity(held_square, input=go)
    return [total, last]


def held_chain(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, int]:
    x = 0
    for _ in range(n):
        x = yield ctx.call_activity(held_increment, input=x)
    return int(x)


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(held_fan, name="held_fan")
runtime.register_workflow(held_chain, name="held_chain")
for activity in (held_square, held_total, held_increment):
    runtime.register_activity(activity, name=activity.__name__)
runtime.start()
print("worker ready", flush=True)
while True:
    time.sleep(1)
