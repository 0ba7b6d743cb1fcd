"""A runtime and a client in different processes, sharing one store."""

from __future__ import annotations

import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import treadle as wf
from treadle.core.history import TaskCompleted

from .helpers import decoded, finish, kinds, status_of, wait_until

WORKER = textwrap.dedent(
    """
    import os
    import sys

    import treadle as wf

    runtime = wf.WorkflowRuntime(sys.argv[1])


    @runtime.activity
    def whoami(ctx, x):
        return {"pid": os.getpid(), "x": x}


    @runtime.workflow
    def remote(ctx, x):
        me = yield ctx.call_activity(whoami, input=x)
        go = yield ctx.wait_for_external_event("go")
        return [me, go]


    with runtime:
        print("ready", flush=True)
        sys.stdin.read()  # run until the test closes our stdin
    """
)


def test_client_and_runtime_in_different_processes(
    tmp_path: Path,
    store_url: str,
    client: wf.WorkflowClient,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    iid = client.schedule_new_workflow("remote", input=5)  # before the worker even exists
    proc = spawn(script, store_url)

    wait_until(lambda: "TaskCompleted" in kinds(client, iid), timeout=20, what="the activity")
    assert status_of(client, iid) is wf.WorkflowStatus.RUNNING
    client.raise_workflow_event(iid, "go", data={"from": "the test process"})
    state = finish(client, iid, timeout=20)

    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    me, go = decoded(state.serialized_output)
    assert me == {"pid": proc.pid, "x": 5}
    assert go == {"from": "the test process"}

    # a second instance started while the worker runs is picked up too
    second = client.schedule_new_workflow("remote", input=6)
    client.raise_workflow_event(second, "go", data=None)
    assert decoded(finish(client, second, timeout=20).serialized_output) == [
        {"pid": proc.pid, "x": 6},
        None,
    ]

    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    # a clean shutdown leaves no leases behind
    assert client.store.lease_owners() == []


TWIN = textwrap.dedent(
    """
    import os
    import sys
    import time

    import treadle as wf

    STORE, LOG = sys.argv[1], sys.argv[2]
    runtime = wf.WorkflowRuntime(STORE, max_concurrent_workflows=4, max_concurrent_activities=4)


    @runtime.activity
    def step(ctx, value):
        with open(LOG, "a") as f:
            f.write(f"{runtime.owner} {ctx.workflow_id} {ctx.task_id}\\n")
            f.flush()
            os.fsync(f.fileno())
        time.sleep(0.005)
        return runtime.owner


    @runtime.workflow
    def multi_step(ctx, n):
        owners = []
        for i in range(5):
            owners.append((yield ctx.call_activity(step, input=[n, i])))
        return owners


    with runtime:
        print("ready", flush=True)
        sys.stdin.read()
    """
)


def test_two_runtime_processes_on_one_store_run_each_step_once(
    tmp_path: Path,
    store_url: str,
    client: wf.WorkflowClient,
    spawn: Callable[..., subprocess.Popen[str]],
) -> None:
    script = tmp_path / "twin.py"
    script.write_text(TWIN)
    log = tmp_path / "steps.log"
    procs = [spawn(script, store_url, str(log), stdout=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    ids = [
        client.schedule_new_workflow("multi_step", input=n, instance_id=f"m-{n:02d}")
        for n in range(40)
    ]
    outputs = {iid: decoded(finish(client, iid, timeout=30).serialized_output) for iid in ids}
    for proc in procs:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        assert proc.wait(timeout=20) == 0
        proc.stdout.close()

    entries = [line.split() for line in log.read_text().splitlines()]
    runs = Counter((iid, int(task_id)) for _, iid, task_id in entries)
    assert max(runs.values()) == 1, "a step ran twice"
    assert len(runs) == 40 * 5
    ran_by = {(iid, int(task_id)): owner for owner, iid, task_id in entries}
    assert len({owner for owner, _, _ in entries}) == 2, "both runtimes should have done work"
    for iid in ids:
        history = client.get_workflow_history(iid)
        scheduled = [e.event_id for e in history if e.KIND == "TaskScheduled"]
        completed = [e.task_scheduled_id for e in history if isinstance(e, TaskCompleted)]
        assert len(scheduled) == len(set(scheduled)) == 5, iid
        assert completed == scheduled, iid
        assert outputs[iid] == [ran_by[(iid, task_id)] for task_id in scheduled]
