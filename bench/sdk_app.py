"""The benchmark's workloads as users of the official Dapr Python SDK write them.

Run with the interpreter of an environment that has ``dapr-ext-workflow`` (never with
treadle's: the SDK's generated protobuf modules cannot share a process with treadle's)::

    python bench/sdk_app.py --address HOST:PORT --role both|worker|client
        [--workload W1a|W1b|W3] [--size N] [--warmup N] [--timeout S]

``worker`` registers the workflows and activities and runs until its stdin closes, then
prints one line of JSON: how many activities it ran. ``client``
and ``both`` (a client and a worker in one process, as the SDK's own examples run) print
``READY`` once ready, wait for a line on stdin, run the workload, print one line of JSON with
its wall figures (and how many activities it ran), and exit. The driver (``bench/sdk.py``)
reads the processes' CPU time from ``/proc`` between ``READY`` and the JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf

EXECUTED = [0]
"""Activity executions in this process (they run on the SDK's threads; a list item's += under
the GIL may race, so each activity adds under a lock)."""
_LOCK = threading.Lock()


def _count() -> None:
    with _LOCK:
        EXECUTED[0] += 1


def step1(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """First link of the chain."""
    _count()
    return x + 1


def step2(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """Second link of the chain."""
    _count()
    return x * 2


def step3(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """Third link of the chain."""
    _count()
    return x ^ 2


def task_chain(ctx: wf.DaprWorkflowContext, x: int) -> Generator[Any, Any, list[int]]:
    """The seed's task chain: three activities in succession."""
    r1 = yield ctx.call_activity(step1, input=x)
    r2 = yield ctx.call_activity(step2, input=r1)
    r3 = yield ctx.call_activity(step3, input=r2)
    return [r1, r2, r3]


def task_chain_result(x: int) -> list[int]:
    """What :func:`task_chain` returns for ``x``."""
    return [x + 1, (x + 1) * 2, ((x + 1) * 2) ^ 2]


def increment(ctx: wf.WorkflowActivityContext, x: int) -> int:
    """One step of a long chain."""
    _count()
    return x + 1


def long_chain(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, int]:
    """``n`` sequential activity steps."""
    x = 0
    for _ in range(n):
        x = yield ctx.call_activity(increment, input=x)
    return int(x)


def runtime(host: str, port: str) -> wf.WorkflowRuntime:
    """A worker with the benchmark's workflows and activities registered."""
    rt = wf.WorkflowRuntime(host=host, port=port)
    rt.register_workflow(task_chain, name="task_chain")
    rt.register_workflow(long_chain, name="long_chain")
    for activity in (step1, step2, step3, increment):
        rt.register_activity(activity, name=activity.__name__)
    return rt


def check(state: Any, expected: Any, what: str) -> None:
    """Fail unless the workflow completed with ``expected``."""
    if state is None:
        raise SystemExit(f"{what}: no state (timed out?)")
    status = state.runtime_status.name
    if status != "COMPLETED":
        raise SystemExit(f"{what}: {status}: {state.failure_details}")
    output = json.loads(state.serialized_output or "null")
    if output != expected:
        raise SystemExit(f"{what}: output {output!r}, expected {expected!r}")


def run(client: wf.DaprWorkflowClient, opts: argparse.Namespace) -> dict[str, Any]:
    """Run the workload; its wall figures."""
    timeout = int(opts.timeout)
    if opts.workload == "W1a":
        latencies: list[float] = []
        for i in range(opts.warmup + opts.size):
            start = time.perf_counter()
            iid = client.schedule_new_workflow(task_chain, input=i)
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=timeout)
            if i >= opts.warmup:
                latencies.append((time.perf_counter() - start) * 1e3)
            check(state, task_chain_result(i), f"task_chain({i})")
        return {"latencies_ms": latencies}
    if opts.workload == "W1b":
        start = time.perf_counter()
        ids = [client.schedule_new_workflow(task_chain, input=i) for i in range(opts.size)]
        scheduling = time.perf_counter() - start
        for i, iid in enumerate(ids):
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=timeout)
            check(state, task_chain_result(i), f"task_chain({i})")
        return {"elapsed_s": time.perf_counter() - start, "scheduling_s": scheduling}
    start = time.perf_counter()
    iid = client.schedule_new_workflow(long_chain, input=opts.size)
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=timeout)
    check(state, opts.size, f"long_chain({opts.size})")
    return {"elapsed_s": time.perf_counter() - start}


def main() -> int:
    """See the module."""
    parser = argparse.ArgumentParser(prog="sdk_app.py")
    parser.add_argument("--address", required=True)
    parser.add_argument("--role", choices=("both", "worker", "client"), default="both")
    parser.add_argument("--workload", choices=("W1a", "W1b", "W3"), default="W1a")
    parser.add_argument("--size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0)
    opts = parser.parse_args()
    host, port = opts.address.rsplit(":", 1)
    rt = runtime(host, port) if opts.role in ("both", "worker") else None
    if rt is not None:
        rt.start()
        rt.wait_for_worker_ready(timeout=30)
    if rt is not None and opts.role == "worker":
        print("READY", flush=True)
        sys.stdin.read()
        rt.shutdown()
        print(json.dumps({"activities": EXECUTED[0]}), flush=True)
        return 0
    client = wf.DaprWorkflowClient(host=host, port=port)
    print("READY", flush=True)
    sys.stdin.readline()
    result = run(client, opts)
    result["activities"] = EXECUTED[0]
    print(json.dumps(result), flush=True)
    if rt is not None:
        rt.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
