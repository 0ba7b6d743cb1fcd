"""Activity heartbeats: an activity whose worker stops (here: is paused) is taken over after
its heartbeat timeout, long before the worker's lease would run out, and the new attempt
goes on from the details of the last heartbeat. On every backend."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import treadle as wf

from .helpers import Workflow, decoded, finish, wait_until

LEASE_S = 20.0
HEARTBEAT = timedelta(seconds=1)
STEPS = 40

WORKER = textwrap.dedent(
    f"""
    import sys
    import time
    from datetime import timedelta

    import treadle as wf

    STORE, MARK = sys.argv[1], sys.argv[2]
    runtime = wf.WorkflowRuntime(STORE, lease_s={LEASE_S})


    @runtime.activity(name="count_up")
    def count_up(ctx, n):
        done = (ctx.heartbeat_details or {{}}).get("done", 0)
        while done < n:
            time.sleep(0.05)
            done += 1
            ctx.heartbeat({{"done": done}})
            if done == 5:
                with open(MARK, "w") as f:
                    f.write("5")
        return {{"resumed_from": None}}


    @runtime.workflow(name="counting")
    def counting(ctx, n):
        every = timedelta(seconds=1)
        return (yield ctx.call_activity("count_up", input=n, heartbeat_timeout=every))


    with runtime:
        print("ready", flush=True)
        sys.stdin.read()  # until the test closes it (or kills this process)
    """
)


def test_a_stuck_workers_activity_is_taken_over_after_the_heartbeat_timeout(
    tmp_path: Path,
    store_url: str,
    spawn: Callable[..., Any],
    make_runtime: Callable[..., wf.WorkflowRuntime],
    client: wf.WorkflowClient,
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    mark = tmp_path / "mark"
    worker = spawn(script, store_url, str(mark))
    iid = client.schedule_new_workflow("counting", input=STEPS)
    wait_until(mark.exists, timeout=30, what="the worker's activity to heartbeat 5 times")
    os.kill(worker.pid, signal.SIGSTOP)  # alive, holding its leases, heartbeating no more
    paused_at = time.monotonic()
    resumed: list[tuple[Any, float]] = []
    taken = threading.Event()

    def count_up(ctx: wf.WorkflowActivityContext, n: int) -> dict[str, Any]:
        resumed.append((ctx.heartbeat_details, time.monotonic() - paused_at))
        taken.set()
        return {"resumed_from": ctx.heartbeat_details}

    runtime = make_runtime(start=False, lease_s=LEASE_S)
    runtime.register_activity(count_up, name="count_up")

    @runtime.workflow(name="counting")
    def counting(ctx: wf.WorkflowContext, n: int) -> Workflow[Any]:
        return (yield ctx.call_activity("count_up", input=n, heartbeat_timeout=HEARTBEAT))

    runtime.start()
    try:
        assert taken.wait(15), "the activity was not taken over"
        ((details, after_s),) = resumed
        assert details is not None and 5 <= details["done"] < STEPS
        assert after_s < LEASE_S / 2, f"taken over {after_s:.1f} s after the pause"
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # its instance lease goes with it (same host)
    out = decoded(finish(client, iid, timeout=30).serialized_output)
    assert out == {"resumed_from": details}
