"""Poison work: an activity that kills its worker process (SIGKILL) on every attempt is
parked after ``--max-activity-deliveries`` attempts with a clear reason, its retry policy does
not start it again, and healthy instances beside it complete.

``treadle worker`` runs in a child process under a supervisor loop (this test) that starts it
again each time it dies, as a process manager would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import treadle as wf

from .conftest import EVERY_BACKEND

LIMIT = 3
HEALTHY = 5
DEADLINE_S = 90.0  # (under the 120 s pytest timeout, to say what was seen)

MODULE = textwrap.dedent(
    """
    import os
    import signal
    from datetime import timedelta

    import treadle as wf

    LOG = os.environ["POISON_LOG"]
    runtime = wf.WorkflowRuntime(lease_s=2)
    RETRY = wf.RetryPolicy(first_retry_interval=timedelta(seconds=0.1), max_number_of_attempts=5)


    @runtime.activity
    def die(ctx, _):
        with open(LOG, "a") as f:
            f.write(f"{os.getpid()}\\n")
            f.flush()
            os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)


    @runtime.activity
    def add(ctx, pair):
        return pair[0] + pair[1]


    @runtime.workflow
    def doomed(ctx, x):
        return (yield ctx.call_activity(die, input=x, retry_policy=RETRY))


    @runtime.workflow
    def healthy(ctx, x):
        for n in range(3):
            x = yield ctx.call_activity(add, input=[x, n])
        return x
    """
)


def _worker(tmp_path: Path, store_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "TREADLE_STORE"}
    env["POISON_LOG"] = str(log)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "treadle.cli",
            "--db",
            store_url,
            "worker",
            "poisonmod:runtime",
            "--max-activity-deliveries",
            str(LIMIT),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _finished(state: wf.WorkflowState | None) -> bool:
    return state is not None and state.runtime_status not in (
        wf.WorkflowStatus.PENDING,
        wf.WorkflowStatus.RUNNING,
    )


@pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)
def test_an_activity_that_kills_its_worker_is_parked_and_others_complete(
    store_url: str, tmp_path: Path, client: wf.WorkflowClient
) -> None:
    (tmp_path / "poisonmod.py").write_text(MODULE)
    log = tmp_path / "executions.log"
    log.touch()
    client.schedule_new_workflow("doomed", input=1, instance_id="doomed")
    for n in range(HEALTHY):
        client.schedule_new_workflow("healthy", input=n, instance_id=f"ok-{n}")
    ids = ["doomed", *(f"ok-{n}" for n in range(HEALTHY))]
    proc = _worker(tmp_path, store_url, log)
    deaths = 0
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not all(_finished(client.get_workflow_state(i)) for i in ids):
            if time.monotonic() > deadline:
                seen = {
                    i: getattr(client.get_workflow_state(i), "runtime_status", None) for i in ids
                }
                pytest.fail(
                    f"not all finished within {DEADLINE_S:.0f} s: {seen}; the activity ran "
                    f"{len(log.read_text().split())} times, the worker died {deaths} times"
                )
            if proc.poll() is not None:
                deaths += 1
                proc = _worker(tmp_path, store_url, log)
            time.sleep(0.1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    executions = len(log.read_text().split())
    state = client.get_workflow_state("doomed")
    assert state is not None and state.runtime_status is wf.WorkflowStatus.FAILED, state
    failure = state.failure_details
    assert failure is not None
    assert "ActivityPoisoned" in f"{failure.error_type} {failure.message}", failure
    assert f"'die' was started {LIMIT} times" in failure.message, failure.message
    assert "crashed or was killed" in failure.message, failure.message
    # the retry policy (5 attempts) did not start it again once parked
    assert executions == LIMIT, f"the activity ran {executions} times"
    assert deaths >= LIMIT - 1, deaths
    for n in range(HEALTHY):
        done = client.get_workflow_state(f"ok-{n}")
        assert done is not None and done.runtime_status is wf.WorkflowStatus.COMPLETED, done
        assert json.loads(done.serialized_output or "null") == n + 3
