"""Activity heartbeats: an activity whose worker stops (here: is paused, as a dead or frozen
one would be: nothing of it renews any lease) is taken over after its heartbeat timeout, long
before the worker's lease would run out, and the new attempt goes on from the details of the
last heartbeat. On every backend."""

from __future__ import annotations

import os
import signal
import sqlite3
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
        while done < 5:
            time.sleep(0.05)
            done += 1
            ctx.heartbeat({{"done": done}})
        with open(MARK, "w") as f:  # no more heartbeats from here: the test pauses us
            f.write("5")
        time.sleep(60)
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


def _pause(pid: int, store_url: str) -> None:
    """SIGSTOP ``pid``, on SQLite at a moment it holds no write transaction (a process
    stopped inside a write holds the file's write lock for every process; the worker writes
    rarely once its activity stopped heartbeating, so few tries are needed)."""
    if not store_url.startswith("sqlite:///"):
        os.kill(pid, signal.SIGSTOP)  # (its statements hold row locks for a moment at most)
        return
    database = store_url.removeprefix("sqlite:///")
    for _ in range(100):
        os.kill(pid, signal.SIGSTOP)
        probe = sqlite3.connect(database, timeout=0.05, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.01)
        finally:
            probe.close()
    raise AssertionError("the worker held the write lock at each of 100 pauses")


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
    _pause(worker.pid, store_url)  # alive, holding its leases, renewing none of them
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
        assert details == {"done": 5}
        assert after_s < LEASE_S / 2, f"taken over {after_s:.1f} s after the pause"
    finally:
        os.kill(worker.pid, signal.SIGKILL)  # its instance lease goes with it (same host)
    out = decoded(finish(client, iid, timeout=30).serialized_output)
    assert out == {"resumed_from": details}
