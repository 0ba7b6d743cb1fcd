"""Crash safety: kill -9 a runtime process again and again; nothing recorded is redone or lost.

A child process runs a runtime over a SQLite file: 20 instances of a 30-step chain, two
fan-outs of 40 activities, and a collector of external events. The test SIGKILLs it at random
moments once it has made progress (or, in a second run, once only the collector is left),
restarts it, and finally lets it finish. Every activity
logs its start (fsync'ed) and, before working, asks the store (through its own WorkflowClient)
whether its completion is already recorded in history: running again after that would be a
VIOLATION. Re-running an activity whose result was not yet recorded is allowed (activities are
at-least-once); the test prints how often that happened.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

import treadle as wf
from treadle.core.history import TaskCompleted
from treadle.store import InstanceQuery, InstanceRecord

from .helpers import finish, wait_for_count, wait_until

CHAINS = 20
STEPS = 30
FANS = 2
FAN_WIDTH = 40
KILLS = 4
# History events the run records for sure before the last ping, wherever the kills fall:
# every activity's TaskScheduled and TaskCompleted, every chain's and fan's start and end, and
# the collector's start. (Turn markers are left out, as how many turns a fan takes depends on
# timing, and so are the pings.) The whole run records about 2,100.
SURELY_RECORDED = 2 * (CHAINS * STEPS + FANS * FAN_WIDTH) + 2 * (CHAINS + FANS) + 1

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


def _instances(client: wf.WorkflowClient) -> list[InstanceRecord]:
    """Every instance of the run, as one snapshot (one query)."""
    return client.store.list_instances(InstanceQuery(limit=1000)).instances


def _progress(client: wf.WorkflowClient) -> int:
    """History events recorded across all instances (it only ever grows here)."""
    return sum(r.history_len for r in _instances(client))


def _leases_of(client: wf.WorkflowClient, pid: int) -> list[str]:
    """The lease owners in the store that are runtimes of process ``pid`` on this host."""
    host = socket.gethostname()
    return [
        owner
        for owner in client.store.lease_owners()
        if owner.rsplit(":", 2)[:2] == [host, str(pid)]
    ]


def _wait_taken_over(client: wf.WorkflowClient, pid: int, state: Callable[[], str]) -> None:
    """Wait until no lease in the store is held by the runtime of the killed process ``pid``."""
    wait_until(
        lambda: not _leases_of(client, pid),
        timeout=10,
        what=f"the leases of the killed runtime (process {pid}) to be taken over",
        state=state,
    )


def _describe(client: wf.WorkflowClient, proc: subprocess.Popen[str]) -> str:
    """What a failed wait saw: progress, unfinished instances, leases, the worker process."""
    records = _instances(client)
    unfinished = [
        f"{r.instance_id} {r.status.name} ({r.history_len} events)"
        for r in records
        if not r.status.is_terminal
    ]
    process = "running" if proc.poll() is None else f"exited with {proc.returncode}"
    return (
        f"{sum(r.history_len for r in records)} history events; "
        f"{len(records) - len(unfinished)} of {len(records)} instances finished, "
        f"unfinished: {unfinished}; lease owners: {client.store.lease_owners()}; "
        f"worker process {proc.pid} {process}"
    )


@pytest.mark.parametrize("late", [False, True], ids=["kills-during-the-work", "kills-after-it"])
def test_kill_9_redoes_no_recorded_step_and_loses_nothing(
    late: bool,
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

    def progress() -> int:
        return _progress(client)

    def state() -> str:
        return _describe(client, proc)

    proc = start()
    if late:
        # Kills with nothing left but the pings to take (how a slow write of the test once
        # left them): each must still arrive once, and no wait may outlast the work.
        for iid in chains + fans:
            finish(client, iid, timeout=60)
    kills = 0
    for k in range(KILLS):
        # A random amount of further progress, but never more than the run can produce: the
        # runtime may have done nearly everything already (it did so while a write of this
        # process waited for SQLite's lock), and the collector does not finish before the
        # last ping; then the kill comes at once.
        target = min(progress() + rng.randint(30, 250), SURELY_RECORDED)
        wait_for_count(
            progress,
            target,
            reachable=SURELY_RECORDED,
            timeout=30,
            interval=0.005,
            what="history events in the store",
            state=state,
        )
        # acknowledged just before the kill: it must not be lost
        client.raise_workflow_event(collector, "ping", data=k)
        proc.kill()
        proc.wait(timeout=10)
        kills += 1
        dead = proc.pid
        proc = start()
        # The new process takes over the dead one's leases at once (not after lease_s = 30 s:
        # until then, nothing the dead one held would move)...
        _wait_taken_over(client, dead, state)
        # ... and works on: while a chain or a fan is unfinished, its history grows.
        records = _instances(client)
        if any(not r.status.is_terminal for r in records if r.instance_id != collector):
            recorded = sum(r.history_len for r in records)
            wait_for_count(
                progress,
                recorded + 1,
                reachable=recorded + 1,  # an unfinished instance records its end at least
                timeout=10,
                what="history events in the store after the restart",
                state=state,
            )
    client.raise_workflow_event(collector, "ping", data=KILLS)

    for iid in chains + fans + [collector]:
        final = finish(client, iid, timeout=60)
        assert final.runtime_status is wf.WorkflowStatus.COMPLETED, (iid, final.failure_details)
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
        assert state is not None and state.serialized_output is not None, iid
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
