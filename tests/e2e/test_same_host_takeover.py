"""A runtime that starts on this host releases the leases of runtimes whose process is gone,
a zombie (dead but not yet reaped) included, and keeps those of live processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

import treadle as wf
from treadle.store import NewInstance
from treadle.store.base import new_execution_id


@pytest.fixture
def zombie() -> Iterator[int]:
    """The pid of a child process that has exited and is not reaped yet."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # wait until it has exited without reaping it (waitid with WNOWAIT leaves it a zombie)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        yield proc.pid
    finally:
        proc.wait(timeout=30)


def _hold_lease(store_url: str, owner: str, instance_id: str) -> None:
    with wf.WorkflowClient(store_url) as client:
        store = client.store
        store.create_instance(
            NewInstance(
                instance_id=instance_id, name="w", input=None, execution_id=new_execution_id()
            )
        )
        assert [i.instance.instance_id for i in store.claim_orchestrations(owner, 10, 300.0)] == [
            instance_id
        ]


def test_leases_of_a_zombie_owner_are_released_at_start(store_url: str, zombie: int) -> None:
    host = socket.gethostname()
    dead = f"{host}:{zombie}:deadbeef"
    alive = f"{host}:{os.getppid()}:cafecafe"  # the test runner's parent: alive
    _hold_lease(store_url, dead, "held-by-zombie")
    _hold_lease(store_url, alive, "held-by-live")
    runtime = wf.WorkflowRuntime(store_url, fail_unknown_workflows=False)
    with runtime:
        owners = set(runtime.store.lease_owners())
    assert dead not in owners
    assert alive in owners
