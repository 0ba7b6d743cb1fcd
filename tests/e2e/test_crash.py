"""Crash safety: kill -9 a runtime process again and again; nothing recorded is redone or lost.

A child process runs a runtime over a SQLite file: 20 instances of a 30-step chain, two
fan-outs of 40 activities, and a collector of external events. The test SIGKILLs it at random
moments once it has made progress, restarts it, and finally lets it finish. Every activity
logs its start (fsync'ed) and, before working, asks the store (through its own WorkflowClient)
whether its completion is already recorded in history: running again after that would be a
VIOLATION. Re-running an activity whose result was not yet recorded is allowed (activities are
at-least-once); the test prints how often that happened.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import treadle as wf
from treadle.core.history import TaskCompleted
from treadle.store import InstanceQuery

from .helpers import finish, wait_until

CHAINS = 20
STEPS = 30
FANS = 2
FAN_WIDTH = 40
KILLS = 4

WORKER = textwrap.dedent(
    f"""
    import os
    import sys
    import time

    import treadle as wf

    STORE, LOG = sys.argv[1], sys.argv[2]
    STEPS = {STEPS}
    checker = wf.WorkflowClient(STORE)  # a separate store object on the same file
    runtime = wf.WorkflowRuntime(STORE, max_concurrent_activities=8)


    def log(line):
        with open(LOG, "a") as f:
            f.write(line + "\\n")
            f.flush()
            os.fsync(f.fileno())


    def guard(ctx):
        log(f"START {{ctx.task_execution_id}} {{ctx.workflow_id}} {{ctx.task_id}}")
        for event in checker.get_workflow_history(ctx.workflow_id):
            if event.KIND == "TaskCompleted" and event.task_scheduled_id == ctx.task_id:
                log(f"VIOLATION {{ctx.task_execution_id}} {{ctx.workflow_id}} {{ctx.task_id}}")


    @runtime.activity
    def add(ctx, pair):
        guard(ctx)
        time.sleep(0.005)
        return pair[0] + pair[1]


    @runtime.activity
    def square(ctx, i):
        guard(ctx)
        time.sleep(0.01)
        return i * i


    @runtime.workflow
    def chain(ctx, n):
        total = 0
        for i in range(STEPS):
            total = yield ctx.call_activity(add, input=[total, n + i])
        return total


    @runtime.workflow
    def fan(ctx, width):
        parts = yield wf.when_all([ctx.call_activity(square, input=i) for i in range(width)])
        return sum(parts)


    @runtime.workflow
    def collector(ctx, n):
        got = []
        for _ in range(n):
            got.append((yield ctx.wait_for_external_event("ping")))
        return got


    with runtime:
        sys.stdin.read()  # run until killed, or until the test closes our stdin
    checker.close()
    """
)


def _progress(client: wf.WorkflowClient) -> int:
    """History events recorded across all instances (it only ever grows here)."""
    page = client.store.list_instances(InstanceQuery(limit=1000))
    return sum(r.history_len for r in page.instances)


def _wait_for_progress(client: wf.WorkflowClient, at_least: int, timeout: float) -> None:
    wait_until(
        lambda: _progress(client) >= at_least,
        timeout=timeout,
        interval=0.005,
        what=f"{at_least} history events in the store",
    )


def test_kill_9_redoes_no_recorded_step_and_loses_nothing(
    tmp_path: Path,
    store_url: str,
    client: wf.WorkflowClient,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    seed = int(os.environ.get("TREADLE_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed {seed} (set TREADLE_CRASH_SEED to repeat)")
    rng = random.Random(seed)
    script = tmp_path / "crash_worker.py"
    script.write_text(WORKER)
    log = tmp_path / "activities.log"

    chains = [
        client.schedule_new_workflow("chain", input=n, instance_id=f"chain-{n:02d}")
        for n in range(CHAINS)
    ]
    fans = [
        client.schedule_new_workflow("fan", input=FAN_WIDTH, instance_id=f"fan-{k}")
        for k in range(FANS)
    ]
    collector = client.schedule_new_workflow("collector", input=KILLS + 1, instance_id="pings")

    def start() -> subprocess.Popen[str]:
        return spawn(script, store_url, str(log))

    proc = start()
    kills = 0
    for k in range(KILLS):
        _wait_for_progress(client, _progress(client) + rng.randint(30, 250), timeout=30)
        # acknowledged just before the kill: it must not be lost
        client.raise_workflow_event(collector, "ping", data=k)
        proc.kill()
        proc.wait(timeout=10)
        kills += 1
        proc = start()
        # the new process takes over the dead one's leases at once (not after lease_s = 30 s)
        _wait_for_progress(client, _progress(client) + 1, timeout=10)
    client.raise_workflow_event(collector, "ping", data=KILLS)

    for iid in chains + fans + [collector]:
        state = finish(client, iid, timeout=60)
        assert state.runtime_status is wf.WorkflowStatus.COMPLETED, (iid, state.failure_details)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    assert kills == KILLS

    lines = log.read_text().splitlines()
    violations = [line for line in lines if line.startswith("VIOLATION")]
    assert violations == [], f"ran again after their result was recorded: {violations[:10]}"
    starts = Counter(line.split()[1] for line in lines if line.startswith("START"))
    assert len(starts) == CHAINS * STEPS + FANS * FAN_WIDTH
    reruns = sum(count - 1 for count in starts.values())
    print(f"{kills} kills; {reruns} re-executions of activities whose results were not recorded")

    def output(iid: str) -> object:
        state = client.get_workflow_state(iid)
        assert state is not None and state.serialized_output is not None
        return json.loads(state.serialized_output)

    for n, iid in enumerate(chains):
        assert output(iid) == sum(n + i for i in range(STEPS)), iid
    for iid in fans:
        assert output(iid) == sum(i * i for i in range(FAN_WIDTH)), iid
    # every ping, each raised just before a kill, arrived once and in order
    assert output(collector) == list(range(KILLS + 1))

    # every step's result is recorded exactly once
    for iid in chains + fans:
        history = client.get_workflow_history(iid)
        scheduled = [e.event_id for e in history if e.KIND == "TaskScheduled"]
        completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        assert len(scheduled) == len(set(scheduled)), iid
        assert sorted(completed) == sorted(scheduled), iid
