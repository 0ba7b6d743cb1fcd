"""Pause, resume and terminate through ``treadle serve`` with the official Python SDK: each is
visible when it returns (a pause or resume at once even while the instance's turn waits for
a worker that has gone), and a terminate of instances whose SDK worker has gone ends them
TERMINATED (a worker that connects later and lacks their workflow does not fail them); on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sdk_env import sdk_python

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb

from .helpers import wait_until
from .sidecar import describe, last_line, run_sdk, sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv

TERMINATED = opb.ORCHESTRATION_STATUS_TERMINATED


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_control_calls_are_visible_and_a_workerless_terminate_ends_terminated(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = str(request.getfixturevalue("postgres_schema_url")) if backend == "postgres" else None
    python = sdk_python()
    with serve(tmp_path, db=db) as served:
        result = run_sdk(python, "control.py", "--address", served.address)
        assert result.returncode == 0, describe(result, served)
        seen = json.loads(last_line(result.stdout))
        assert seen == {"after_pause": "SUSPENDED", "after_resume": "RUNNING"}
        # the SDK worker has gone: nothing can run sdk_waiter or sdk_parent now
        stub = served.stub()

        def status(iid: str) -> int:
            reply = stub.GetInstance(spb.GetInstanceRequest(instanceId=iid), timeout=10)
            return int(reply.workflowState.workflowStatus)

        # an event's turn waits for a worker: a pause and a resume act at once all the same
        stub.RaiseEvent(spb.RaiseEventRequest(instanceId="ctl-1", name="go"), timeout=10)
        for call, request_type, shown in (
            (stub.SuspendInstance, spb.SuspendRequest, opb.ORCHESTRATION_STATUS_SUSPENDED),
            (stub.ResumeInstance, spb.ResumeRequest, opb.ORCHESTRATION_STATUS_RUNNING),
        ):
            began = time.monotonic()
            call(request_type(instanceId="ctl-1"), timeout=30)
            took = time.monotonic() - began
            assert status("ctl-1") == shown, served.logs()
            assert took < 3.0, f"{call} took {took:.1f} s with no worker\n{served.logs()}"
        stub.TerminateInstance(spb.TerminateRequest(instanceId="ctl-1"), timeout=30)
        assert status("ctl-1") == TERMINATED, served.logs()
        stub.TerminateInstance(
            spb.TerminateRequest(instanceId="ctl-parent", recursive=True), timeout=30
        )
        assert status("ctl-parent") == TERMINATED, served.logs()
        wait_until(
            lambda: status("ctl-child") == TERMINATED,
            timeout=30,
            what="the child to be terminated with its parent",
            state=served.logs,
        )
        # a worker without those workflows connects: they stay TERMINATED
        with sdk_process(python, "worker.py", "--address", served.address, log=tmp_path / "w"):
            wait_until(
                lambda: "connected: stream 2" in served.logs(),
                timeout=60,
                what="a second SDK worker to connect",
                state=served.logs,
            )
            assert [status(i) for i in ("ctl-1", "ctl-parent", "ctl-child")] == [TERMINATED] * 3
