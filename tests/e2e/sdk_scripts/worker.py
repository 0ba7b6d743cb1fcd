"""An SDK worker for the ``treadle serve`` tests (run with the SDK venv's python).

    worker.py --address HOST:PORT [--marker DIR] [--hang]

Registers ``sdk_slow_chain`` (calls ``sdk_slow_step``), ``sdk_calls_app_activity`` (calls the
in-process activity ``app_double`` by name) and the activity ``sdk_shout``. ``sdk_slow_step``
writes ``DIR/started-<pid>-<x>`` when it starts and, with ``--hang``, never returns. Prints
``worker ready`` once its work-item stream is open; runs until killed.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

args = argparse.ArgumentParser()
args.add_argument("--address", required=True)
args.add_argument("--marker", default=None)
args.add_argument("--hang", action="store_true")
opts = args.parse_args()
host, port = opts.address.rsplit(":", 1)


def sdk_slow_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    if opts.marker:
        pathlib.Path(opts.marker, f"started-{os.getpid()}-{x}").write_text(str(ctx.task_id))
    if opts.hang:
        time.sleep(3600)
    return x * 10


def sdk_shout(ctx: wf.WorkflowActivityContext, text: str) -> str:
    return text.upper() + "!"


# The SDK's task types are unknown here (Any): the SDK is not installed where mypy runs.
def sdk_slow_chain(ctx: wf.DaprWorkflowContext, x: int) -> Generator[Any, Any, int]:
    a: int = yield ctx.call_activity(sdk_slow_step, input=x)
    return a + 1


def sdk_calls_app_activity(
    ctx: wf.DaprWorkflowContext, x: int
) -> Generator[Any, Any, dict[str, int]]:
    doubled = yield ctx.call_activity("app_double", input=x)
    return {"doubled": doubled}


runtime = wf.WorkflowRuntime(host=host, port=port)
runtime.register_workflow(sdk_slow_chain, name="sdk_slow_chain")
runtime.register_workflow(sdk_calls_app_activity, name="sdk_calls_app_activity")
runtime.register_activity(sdk_slow_step, name="sdk_slow_step")
runtime.register_activity(sdk_shout, name="sdk_shout")
runtime.start()
print("worker ready", flush=True)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    runtime.shutdown()
    sys.exit(0)
