"""The work-item stream of ``treadle serve``, driven by a fake worker made of treadle's own stubs.

These pin the protocol details the SDKs rely on: what a WorkflowRequest and an ActivityRequest
carry, completions without a completion token (the JavaScript SDK sends none), and what happens
to an answer treadle cannot use.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server._proto import orchestrator_service_pb2_grpc as stubs

from .sidecar import serve


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[stubs.TaskHubSidecarServiceStub]:
    with serve(tmp_path) as served:
        yield served.stub()


def start(stub: stubs.TaskHubSidecarServiceStub, iid: str, data: str | None = None) -> None:
    request = spb.CreateInstanceRequest(
        instanceId=iid, name="fake_wf", input=None if data is None else StringValue(value=data)
    )
    stub.StartInstance(request, timeout=10)


def complete(result: str, action_id: int = 1) -> apb.WorkflowAction:
    return apb.WorkflowAction(
        id=action_id,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_COMPLETED, result=StringValue(value=result)
        ),
    )


def state_of(stub: stubs.TaskHubSidecarServiceStub, iid: str) -> opb.WorkflowState:
    request = spb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True)
    response: spb.GetInstanceResponse = stub.WaitForInstanceCompletion(request, timeout=20)
    return response.workflowState


def test_workflow_request_and_a_completion_without_token(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "fake-1", data='{"n": 1}')
    stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    item = next(stream)
    assert item.WhichOneof("request") == "workflowRequest" and item.completionToken
    request = item.workflowRequest
    assert request.instanceId == "fake-1" and request.executionId.value
    kinds = [e.WhichOneof("eventType") for e in request.newEvents]
    assert kinds == ["workflowStarted", "executionStarted"] and not request.pastEvents
    started = request.newEvents[1].executionStarted
    assert started.name == "fake_wf" and json.loads(started.input.value) == {"n": 1}
    # no completionToken, as the JavaScript SDK answers
    response = spb.WorkflowResponse(
        instanceId="fake-1", actions=[complete('"ok"')], customStatus=StringValue(value="done")
    )
    stub.CompleteWorkflowTask(response, timeout=10)
    state = state_of(stub, "fake-1")
    assert state.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED
    assert state.output.value == '"ok"' and state.customStatus.value == "done"
    stream.cancel()


def test_activity_round_trip_through_the_stream(stub: stubs.TaskHubSidecarServiceStub) -> None:
    start(stub, "fake-2")
    stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    first = next(stream)
    schedule = apb.WorkflowAction(
        id=0, scheduleTask=apb.ScheduleTaskAction(name="fake_act", input=StringValue(value="5"))
    )
    stub.CompleteOrchestratorTask(
        spb.WorkflowResponse(
            instanceId="fake-2", actions=[schedule], completionToken=first.completionToken
        )
    )
    activity = next(stream)
    assert activity.WhichOneof("request") == "activityRequest"
    request = activity.activityRequest
    assert request.name == "fake_act" and request.input.value == "5" and request.taskId == 0
    assert request.workflowInstance.instanceId == "fake-2" and request.taskExecutionId
    assert request.workflowInstance.executionId.value == first.workflowRequest.executionId.value
    stub.CompleteActivityTask(
        spb.ActivityResponse(instanceId="fake-2", taskId=0, result=StringValue(value="50"))
    )
    second = next(stream).workflowRequest
    past = [e.WhichOneof("eventType") for e in second.pastEvents]
    assert past == ["workflowStarted", "executionStarted", "taskScheduled"]
    assert second.pastEvents[2].eventId == 0
    new = second.newEvents
    assert [e.WhichOneof("eventType") for e in new] == ["workflowStarted", "taskCompleted"]
    assert new[1].taskCompleted.taskScheduledId == 0 and new[1].taskCompleted.result.value == "50"
    stub.CompleteWorkflowTask(spb.WorkflowResponse(instanceId="fake-2", actions=[complete("50")]))
    assert state_of(stub, "fake-2").output.value == "50"
    stream.cancel()


def test_an_unanswered_turn_goes_to_the_next_stream(stub: stubs.TaskHubSidecarServiceStub) -> None:
    start(stub, "fake-3")
    first = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    sent = next(first)
    first.cancel()  # the worker goes away without answering
    second = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    again = next(second)
    assert again.workflowRequest.instanceId == "fake-3"
    assert again.completionToken == sent.completionToken
    stub.CompleteWorkflowTask(spb.WorkflowResponse(instanceId="fake-3", actions=[complete("3")]))
    assert state_of(stub, "fake-3").workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED
    second.cancel()


@pytest.mark.timeout(60)
def test_a_worker_failure_report_is_retried_then_fails_the_instance(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "fake-4")
    stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=45)
    crash = apb.WorkflowAction(
        id=-1,
        completeWorkflow=apb.CompleteWorkflowAction(
            workflowStatus=opb.ORCHESTRATION_STATUS_FAILED,
            result=StringValue(value=""),
            failureDetails=opb.TaskFailureDetails(errorType="OSError", errorMessage="disk gone"),
        ),
    )
    times = []
    for _ in range(3):  # MAX_TURN_ATTEMPTS
        item = next(stream)
        times.append(time.monotonic())
        assert item.workflowRequest.instanceId == "fake-4"
        stub.CompleteWorkflowTask(spb.WorkflowResponse(instanceId="fake-4", actions=[crash]))
    state = state_of(stub, "fake-4")
    assert state.workflowStatus == opb.ORCHESTRATION_STATUS_FAILED
    assert state.failureDetails.errorType == "OSError"
    assert state.failureDetails.errorMessage == "disk gone"
    assert times[1] - times[0] >= 1.5 and times[2] - times[1] >= 3.5  # backed off
    stream.cancel()


def test_an_action_with_a_bad_payload_is_refused_and_the_turn_sent_again(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "fake-5")
    stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=30)
    next(stream)
    bad = spb.WorkflowResponse(instanceId="fake-5", actions=[complete("{not json")])
    with pytest.raises(grpc.RpcError) as info:
        stub.CompleteWorkflowTask(bad)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "not valid JSON" in (info.value.details() or "")
    again = next(stream)  # about 2 s later
    assert again.workflowRequest.instanceId == "fake-5"
    stub.CompleteWorkflowTask(spb.WorkflowResponse(instanceId="fake-5", actions=[complete("1")]))
    assert state_of(stub, "fake-5").output.value == "1"
    stream.cancel()


def test_answers_for_nothing_outstanding_are_refused(stub: stubs.TaskHubSidecarServiceStub) -> None:
    for call, request in (
        (
            stub.CompleteWorkflowTask,
            spb.WorkflowResponse(instanceId="ghost", actions=[complete("1")]),
        ),
        (stub.CompleteActivityTask, spb.ActivityResponse(instanceId="ghost", taskId=3)),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call(request)
        assert info.value.code() is grpc.StatusCode.NOT_FOUND
        assert "unknown instance ID/task ID combo" in (info.value.details() or "")
    assert not stub.GetInstance(spb.GetInstanceRequest(instanceId="ghost")).exists
