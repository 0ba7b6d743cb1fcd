"""``treadle serve`` keeps an SDK workflow whose activities are out between its turns: its
activity results go straight into its next turn. Results that come while a turn is out wait for
the next one; an event or a termination reaches a held instance through its inbox; every
result is recorded exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from google.protobuf.wrappers_pb2 import StringValue
from sdk_env import sdk_python

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server._proto import orchestrator_service_pb2_grpc as stubs

from .helpers import wait_until
from .sidecar import sdk_process, serve

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv


def start(stub: stubs.TaskHubSidecarServiceStub, iid: str, name: str, data: int) -> None:
    request = spb.CreateInstanceRequest(
        instanceId=iid, name=name, input=StringValue(value=str(data))
    )
    stub.StartInstance(request, timeout=10)


def finish(stub: stubs.TaskHubSidecarServiceStub, iid: str) -> opb.WorkflowState:
    request = spb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True)
    response: spb.GetInstanceResponse = stub.WaitForInstanceCompletion(request, timeout=60)
    return response.workflowState


def results_per_task(stub: stubs.TaskHubSidecarServiceStub, iid: str) -> tuple[int, Counter[int]]:
    history = stub.GetInstanceHistory(spb.GetInstanceHistoryRequest(instanceId=iid), timeout=10)
    scheduled = [e for e in history.events if e.HasField("taskScheduled")]
    done = Counter(
        e.taskCompleted.taskScheduledId for e in history.events if e.HasField("taskCompleted")
    )
    return len(scheduled), done


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_held_sdk_workflows_fold_results_into_their_turns(
    tmp_path: Path, store: str, request: pytest.FixtureRequest
) -> None:
    db = None
    if store == "postgres":
        db = request.getfixturevalue("postgres_schema_url")
    python = sdk_python()
    with serve(tmp_path, db=db) as served:
        stub = served.stub()
        with sdk_process(python, "held.py", "--address", served.address, log=tmp_path / "w.log"):
            start(stub, "fan-1", "held_fan", 12)
            for i in range(3):
                start(stub, f"chain-{i}", "held_chain", 25)
            start(stub, "doomed-1", "held_fan", 3)
            wait_until(
                lambda: results_per_task(stub, "fan-1")[0] >= 13,
                timeout=60,
                what="the fan-out's total to be scheduled",
            )
            stub.RaiseEvent(
                spb.RaiseEventRequest(instanceId="fan-1", name="go", input=StringValue(value="7")),
                timeout=10,
            )
            stub.TerminateInstance(
                spb.TerminateRequest(instanceId="doomed-1", output=StringValue(value='"stop"')),
                timeout=10,
            )
            fan = finish(stub, "fan-1")
            assert fan.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED, served.logs()
            assert json.loads(fan.output.value) == [sum(i * i for i in range(1, 13)), 49]
            for i in range(3):
                chain = finish(stub, f"chain-{i}")
                assert chain.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED, served.logs()
                assert json.loads(chain.output.value) == 25
            doomed = finish(stub, "doomed-1")
            assert doomed.workflowStatus == opb.ORCHESTRATION_STATUS_TERMINATED
        for iid, steps in (("fan-1", 14), *((f"chain-{i}", 25) for i in range(3))):
            scheduled, done = results_per_task(stub, iid)
            assert scheduled == steps and len(done) == steps, (iid, scheduled, done)
            assert set(done.values()) == {1}, f"{iid}: a result recorded twice: {done}"
