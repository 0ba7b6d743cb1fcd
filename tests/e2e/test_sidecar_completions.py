"""A completion must answer work the server handed to the caller.

Regression: with the API token, any client could send ``CompleteOrchestratorTask`` for a
PENDING instance it was never given (no token; matched by instance id alone) and so record a
forged output; likewise ``CompleteActivityTask``. Now a completion names its work item by the
random token sent with it (the Python SDK echoes it), or, without one (the JavaScript SDK),
by ids of work outstanding on a stream of the caller's own connection. Anything else is
NOT_FOUND and records nothing. Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from treadle.core.history import OrchestrationStatus
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb

from .conftest import EVERY_BACKEND
from .sidecar_inprocess import InProcessSidecar, grpc_error, in_process_sidecar

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)


@pytest.fixture
def sidecar(store_url: str) -> Iterator[InProcessSidecar]:
    with in_process_sidecar(store_url) as served:
        yield served


def complete(result: str) -> apb.WorkflowAction:
    return apb.WorkflowAction(
        id=1,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_COMPLETED, result=StringValue(value=result)
        ),
    )


def answer(iid: str, result: str, token: str = "") -> spb.WorkflowResponse:
    return spb.WorkflowResponse(instanceId=iid, actions=[complete(result)], completionToken=token)


def assert_refused(error: grpc.RpcError) -> None:
    assert error.code() is grpc.StatusCode.NOT_FOUND, (error.code(), error.details())
    details = error.details() or ""
    assert "no outstanding work item" in details and "nothing was recorded" in details


def test_a_pending_instance_cannot_be_completed_by_a_client_never_given_it(
    sidecar: InProcessSidecar,
) -> None:
    attacker = sidecar.stub(own_connection=True)
    attacker.StartInstance(spb.CreateInstanceRequest(instanceId="victim", name="wf"))
    # no worker is connected: the turn waits in the queue
    assert_refused(grpc_error(attacker.CompleteOrchestratorTask, answer("victim", '"forged"')))
    forged_token = answer("victim", '"forged"', token="victim-1")
    assert_refused(grpc_error(attacker.CompleteOrchestratorTask, forged_token))
    record = sidecar.store.get_instance("victim")
    assert record is not None and record.status is OrchestrationStatus.PENDING
    assert record.output is None and sidecar.store.get_history("victim") == []

    # the turn was not consumed: the first worker to connect gets it and finishes it
    worker = sidecar.stub(own_connection=True)
    stream = worker.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    assert item.workflowRequest.instanceId == "victim"
    worker.CompleteOrchestratorTask(answer("victim", '"real"', item.completionToken), timeout=10)
    done = sidecar.client.wait_for_workflow_completion("victim", timeout_in_seconds=10)
    assert done is not None and done.serialized_output == '"real"'
    stream.cancel()


def test_work_in_flight_is_completed_only_by_its_token_or_its_own_connection(
    sidecar: InProcessSidecar,
) -> None:
    worker = sidecar.stub(own_connection=True)
    attacker = sidecar.stub(own_connection=True)
    worker.StartInstance(spb.CreateInstanceRequest(instanceId="w-1", name="wf"))
    stream = worker.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    assert item.workflowRequest.instanceId == "w-1" and len(item.completionToken) >= 20

    # the attacker knows the instance id but did not receive the item
    assert_refused(grpc_error(attacker.CompleteOrchestratorTask, answer("w-1", '"forged"')))
    wrong = answer("w-1", '"forged"', token=item.completionToken[:-2] + "xx")
    assert_refused(grpc_error(attacker.CompleteOrchestratorTask, wrong))
    record = sidecar.store.get_instance("w-1")
    assert record is not None and record.output is None

    # the worker answers without a token on its own connection (as the JavaScript SDK does)
    schedule = apb.WorkflowAction(
        id=0, scheduleTask=apb.ScheduleTaskAction(name="act", input=StringValue(value="1"))
    )
    worker.CompleteOrchestratorTask(spb.WorkflowResponse(instanceId="w-1", actions=[schedule]))
    task = next(stream)
    assert task.WhichOneof("request") == "activityRequest"
    task_id = task.activityRequest.taskId

    forged = spb.ActivityResponse(
        instanceId="w-1", taskId=task_id, result=StringValue(value='"forged"')
    )
    assert_refused(grpc_error(attacker.CompleteActivityTask, forged))
    forged.completionToken = "not-a-token"
    assert_refused(grpc_error(attacker.CompleteActivityTask, forged))
    kinds = [e.KIND for e in sidecar.store.get_history("w-1")]
    assert "TaskCompleted" not in kinds and "TaskScheduled" in kinds

    real = spb.ActivityResponse(
        instanceId="w-1",
        taskId=task_id,
        result=StringValue(value='"real"'),
        completionToken=task.completionToken,
    )
    worker.CompleteActivityTask(real, timeout=10)
    again = next(stream)
    assert again.workflowRequest.newEvents[-1].taskCompleted.result.value == '"real"'
    worker.CompleteOrchestratorTask(answer("w-1", '"done"', again.completionToken), timeout=10)
    done = sidecar.client.wait_for_workflow_completion("w-1", timeout_in_seconds=10)
    assert done is not None and done.serialized_output == '"done"'

    # a repeated answer is refused too, and changes nothing
    repeated = answer("w-1", '"again"', again.completionToken)
    assert_refused(grpc_error(worker.CompleteOrchestratorTask, repeated))
    final = sidecar.store.get_instance("w-1")
    assert final is not None and final.output == '"done"'
    stream.cancel()
