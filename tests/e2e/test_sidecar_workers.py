"""``treadle serve`` with real Dapr SDK workers: hand-over after a killed worker, and which
workflows and activities run in-process (``--app``) or in the SDK worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from sdk_env import sdk_python

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb

from .helpers import wait_until
from .sidecar import HERE, describe, kill_hard, last_line, run_sdk, sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


def test_activity_of_a_killed_worker_runs_on_the_next_worker(tmp_path: Path) -> None:
    python = sdk_python()
    markers = tmp_path / "markers"
    markers.mkdir()
    worker = ["worker.py", "--marker", str(markers)]
    with serve(tmp_path) as served:
        stub = served.stub()
        address = ["--address", served.address]
        with sdk_process(python, *worker, *address, "--hang", log=tmp_path / "w1.log") as first:
            stub.StartInstance(
                spb.CreateInstanceRequest(
                    instanceId="handover-1", name="sdk_slow_chain", input=StringValue(value="4")
                ),
                timeout=10,
            )
            wait_until(
                lambda: list(markers.glob(f"started-{first.pid}-4")),
                timeout=60,
                what="the activity to start in the first worker",
            )
            kill_hard(first)  # mid-step: the activity was sent and never answered
        state = stub.GetInstance(spb.GetInstanceRequest(instanceId="handover-1"), timeout=10)
        assert state.workflowState.workflowStatus == opb.ORCHESTRATION_STATUS_RUNNING
        with sdk_process(python, *worker, *address, log=tmp_path / "w2.log") as second:
            done = stub.WaitForInstanceCompletion(
                spb.GetInstanceRequest(instanceId="handover-1", getInputsAndOutputs=True),
                timeout=60,
            )
            assert done.workflowState.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED, (
                served.logs()
            )
            assert json.loads(done.workflowState.output.value) == 41
            assert list(markers.glob(f"started-{second.pid}-4")), "the second worker ran it"


def test_app_workflow_started_through_the_sdk_client_runs_in_process(tmp_path: Path) -> None:
    python = sdk_python()
    with serve(tmp_path, "--app", "sidecar_app:runtime", cwd=HERE) as served:
        # no SDK worker is connected: only the in-process runtime can run it
        result = run_sdk(
            python, "client.py", "--address", served.address, "--name", "app_greet",
            "--input", '"Ada"', "--id", "greet-1",
        )  # fmt: skip
        assert result.returncode == 0, describe(result, served)
        assert json.loads(last_line(result.stdout)) == {
            "instance_id": "greet-1",
            "status": "COMPLETED",
            "output": {"greeting": "Hello, Ada!", "instance_id": "greet-1"},
            "failure": None,
        }
        assert any("app_greet" in line for line in served.output)


def test_in_process_and_sdk_functions_call_each_other(tmp_path: Path) -> None:
    python = sdk_python()
    with (
        serve(tmp_path, "--app", "sidecar_app:runtime", cwd=HERE) as served,
        sdk_process(python, "worker.py", "--address", served.address, log=tmp_path / "worker.log"),
    ):
        client = ["client.py", "--address", served.address]
        # an in-process workflow calls an activity only the SDK worker has...
        mixed = run_sdk(python, *client, "--name", "app_mixed", "--input", '"Bo"')
        assert mixed.returncode == 0, describe(mixed, served)
        assert json.loads(last_line(mixed.stdout))["output"] == "HELLO, BO!!"
        # ...and an SDK workflow calls an activity only the in-process runtime has
        calls = run_sdk(python, *client, "--name", "sdk_calls_app_activity", "--input", "21")
        assert calls.returncode == 0, describe(calls, served)
        assert json.loads(last_line(calls.stdout))["output"] == {"doubled": 42}
