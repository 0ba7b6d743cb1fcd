"""``treadle serve``'s gRPC API through treadle's own stubs: reads, errors, limits, auth.

Workflows come from ``--app`` (run in-process), so no SDK is needed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf.wrappers_pb2 import StringValue

from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server._proto import orchestrator_service_pb2_grpc as stubs

from .sidecar import HERE, Served, serve

APP = ("--app", "sidecar_app:runtime")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, *APP, "--max-payload-bytes", "100000", cwd=HERE) as running:
        yield running


@pytest.fixture
def stub(served: Served) -> stubs.TaskHubSidecarServiceStub:
    return served.stub()


def start(
    stub: stubs.TaskHubSidecarServiceStub, iid: str, name: str = "app_chain", data: str | None = "3"
) -> None:
    stub.StartInstance(
        spb.CreateInstanceRequest(
            instanceId=iid, name=name, input=None if data is None else StringValue(value=data)
        ),
        timeout=10,
    )


def finish(stub: stubs.TaskHubSidecarServiceStub, iid: str) -> opb.WorkflowState:
    done: spb.GetInstanceResponse = stub.WaitForInstanceCompletion(
        spb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), timeout=30
    )
    assert done.exists
    return done.workflowState


def code_of(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details() or ""


def test_list_instance_ids_pages_newest_first(stub: stubs.TaskHubSidecarServiceStub) -> None:
    for i in range(3):
        start(stub, f"list-{i}")
        finish(stub, f"list-{i}")
    first = stub.ListInstanceIDs(spb.ListInstanceIDsRequest(pageSize=2), timeout=10)
    assert list(first.instanceIds) == ["list-2", "list-1"]
    assert first.HasField("continuationToken")
    rest = stub.ListInstanceIDs(
        spb.ListInstanceIDsRequest(pageSize=2, continuationToken=first.continuationToken),
        timeout=10,
    )
    assert list(rest.instanceIds) == ["list-0"]
    assert not rest.HasField("continuationToken")


def test_get_instance_history_returns_the_run_as_protobuf_events(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "hist-1", data="2")
    assert json.loads(finish(stub, "hist-1").output.value) == 0 + 2
    history = stub.GetInstanceHistory(spb.GetInstanceHistoryRequest(instanceId="hist-1"))
    kinds = [e.WhichOneof("eventType") for e in history.events]
    assert kinds[0] == "workflowStarted" and kinds[1] == "executionStarted"
    assert kinds.count("taskScheduled") == 2 and kinds.count("taskCompleted") == 2
    assert kinds[-1] == "executionCompleted"
    scheduled = [e for e in history.events if e.HasField("taskScheduled")]
    assert [e.taskScheduled.name for e in scheduled] == ["app_double", "app_double"]
    code, details = code_of(
        lambda: stub.GetInstanceHistory(spb.GetInstanceHistoryRequest(instanceId="nope"))
    )
    assert code is grpc.StatusCode.NOT_FOUND and "nope" in details


def test_get_instance_reports_fields_and_honours_get_inputs_and_outputs(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "state-1", data="2")
    finish(stub, "state-1")
    full = stub.GetInstance(spb.GetInstanceRequest(instanceId="state-1", getInputsAndOutputs=True))
    state = full.workflowState
    assert full.exists and state.name == "app_chain" and state.instanceId == "state-1"
    assert state.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED
    assert state.input.value == "2" and state.output.value == "2"
    assert state.createdTimestamp.ToDatetime() <= state.lastUpdatedTimestamp.ToDatetime()
    bare = stub.GetInstance(spb.GetInstanceRequest(instanceId="state-1")).workflowState
    assert not bare.HasField("input") and not bare.HasField("output")
    assert not stub.GetInstance(spb.GetInstanceRequest(instanceId="unknown")).exists


def test_bad_input_is_invalid_argument_and_the_server_keeps_serving(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    bad_json = code_of(lambda: start(stub, "bad-1", data="{not json"))
    assert bad_json[0] is grpc.StatusCode.INVALID_ARGUMENT and "JSON" in bad_json[1]
    bad_id = code_of(lambda: start(stub, "bad\nid"))
    assert bad_id[0] is grpc.StatusCode.INVALID_ARGUMENT and "control characters" in bad_id[1]
    no_name = code_of(lambda: start(stub, "bad-2", name=""))
    assert no_name[0] is grpc.StatusCode.INVALID_ARGUMENT and "name" in no_name[1]
    event = spb.RaiseEventRequest(instanceId="missing", name="go")
    assert code_of(lambda: stub.RaiseEvent(event))[0] is grpc.StatusCode.NOT_FOUND
    terminate = spb.TerminateRequest(instanceId="missing")
    assert code_of(lambda: stub.TerminateInstance(terminate))[0] is grpc.StatusCode.NOT_FOUND
    start(stub, "ok-1")
    assert finish(stub, "ok-1").workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED


def test_unknown_workflow_names_are_accepted_and_wait_for_a_worker(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "later-1", name="registered_by_some_worker_later")
    state = stub.GetInstance(spb.GetInstanceRequest(instanceId="later-1")).workflowState
    assert state.workflowStatus in (
        opb.ORCHESTRATION_STATUS_PENDING,
        opb.ORCHESTRATION_STATUS_RUNNING,
    )
    code, _ = code_of(lambda: start(stub, "later-1"))
    assert code is grpc.StatusCode.ALREADY_EXISTS
    purge = spb.PurgeInstancesRequest(instanceId="later-1")
    code, details = code_of(lambda: stub.PurgeInstances(purge))
    assert code is grpc.StatusCode.FAILED_PRECONDITION, details
    stub.TerminateInstance(spb.TerminateRequest(instanceId="later-1"))


def test_oversized_messages_are_refused_not_fatal(stub: stubs.TaskHubSidecarServiceStub) -> None:
    big = json.dumps("x" * 200_000)
    code, _ = code_of(lambda: start(stub, "big-1", data=big))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    start(stub, "small-1")
    assert finish(stub, "small-1").workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED


def test_wait_calls_long_poll_until_the_deadline(stub: stubs.TaskHubSidecarServiceStub) -> None:
    start(stub, "waiting-1", name="app_wait_event", data=None)
    request = spb.GetInstanceRequest(instanceId="waiting-1", getInputsAndOutputs=True)
    started = stub.WaitForInstanceStart(request, timeout=10).workflowState
    assert started.workflowStatus == opb.ORCHESTRATION_STATUS_RUNNING
    code, _ = code_of(lambda: stub.WaitForInstanceCompletion(request, timeout=0.5))
    assert code is grpc.StatusCode.DEADLINE_EXCEEDED
    event = spb.RaiseEventRequest(instanceId="waiting-1", name="go", input=StringValue(value="7"))
    stub.RaiseEvent(event, timeout=10)
    done = stub.WaitForInstanceCompletion(request, timeout=10).workflowState
    assert done.workflowStatus == opb.ORCHESTRATION_STATUS_COMPLETED
    assert json.loads(done.output.value) == {"got": 7}


def test_rerun_from_the_start_or_an_activity_runs_a_new_instance(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    start(stub, "src-1", data="3")
    finish(stub, "src-1")
    rerun = stub.RerunWorkflowFromEvent(
        spb.RerunWorkflowFromEventRequest(sourceInstanceID="src-1", eventID=0, newInstanceID="re-1")
    )
    assert rerun.newInstanceID == "re-1"
    again = finish(stub, "re-1")
    assert again.name == "app_chain" and again.input.value == "3" and again.output.value == "6"
    other = spb.RerunWorkflowFromEventRequest(
        sourceInstanceID="src-1", eventID=0, input=StringValue(value="4"), overwriteInput=True
    )
    new_id = stub.RerunWorkflowFromEvent(other).newInstanceID
    assert new_id not in ("src-1", "re-1") and finish(stub, new_id).output.value == "12"
    # from the second activity (event 2), with a new input for it: 0 + 2*10 + 2*2
    later = spb.RerunWorkflowFromEventRequest(
        sourceInstanceID="src-1",
        eventID=2,
        newInstanceID="re-2",
        input=StringValue(value="10"),
        overwriteInput=True,
    )
    assert stub.RerunWorkflowFromEvent(later).newInstanceID == "re-2"
    assert finish(stub, "re-2").output.value == "24"
    missing = spb.RerunWorkflowFromEventRequest(sourceInstanceID="src-1", eventID=9)
    code, details = code_of(lambda: stub.RerunWorkflowFromEvent(missing))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "event 9" in details


def test_purge_by_filter_deletes_only_finished_instances(
    stub: stubs.TaskHubSidecarServiceStub,
) -> None:
    for i in range(2):
        start(stub, f"done-{i}")
        finish(stub, f"done-{i}")
    start(stub, "running-1", name="nobody_runs_this")
    response = stub.PurgeInstances(
        spb.PurgeInstancesRequest(purgeInstanceFilter=spb.PurgeInstanceFilter())
    )
    assert response.deletedInstanceCount == 2 and response.isComplete.value
    assert not stub.GetInstance(spb.GetInstanceRequest(instanceId="done-0")).exists
    assert stub.GetInstance(spb.GetInstanceRequest(instanceId="running-1")).exists
    stub.TerminateInstance(spb.TerminateRequest(instanceId="running-1"))


def test_api_token_is_required_on_every_call(tmp_path: Path) -> None:
    with serve(tmp_path, *APP, env={"DAPR_API_TOKEN": "s3cret"}, cwd=HERE) as served:
        stub = served.stub()
        request = spb.GetInstanceRequest(instanceId="x")
        code, details = code_of(lambda: stub.GetInstance(request, timeout=10))
        assert code is grpc.StatusCode.UNAUTHENTICATED and "dapr-api-token" in details
        wrong = [("dapr-api-token", "guess")]
        code, _ = code_of(lambda: stub.GetInstance(request, metadata=wrong, timeout=10))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=10)
        code, _ = code_of(lambda: next(stream))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        good = [("dapr-api-token", "s3cret")]
        assert not stub.GetInstance(request, metadata=good, timeout=10).exists
    with serve(tmp_path, *APP, env={"TREADLE_API_TOKEN": "other"}, cwd=HERE) as served:
        stub = served.stub()
        code, _ = code_of(lambda: stub.GetInstance(request, timeout=10))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert not stub.GetInstance(request, metadata=[("dapr-api-token", "other")]).exists


def test_the_http_api_shares_the_engine_and_the_token(tmp_path: Path) -> None:
    import httpx

    env = {"DAPR_API_TOKEN": "s3cret"}
    with serve(tmp_path, *APP, env=env, cwd=HERE) as served:
        assert served.http_port is not None
        base = f"http://127.0.0.1:{served.http_port}/v1.0/workflows/dapr"
        with httpx.Client(timeout=10) as http:
            url = f"{base}/app_chain/start?instanceID=http-1"
            assert http.post(url, json=3).status_code == 401
            started = http.post(url, json=3, headers={"dapr-api-token": "s3cret"})
            assert started.status_code in (200, 202), started.text
        # the instance started over HTTP is visible (and finishes) over gRPC
        metadata = [("dapr-api-token", "s3cret")]
        done = served.stub().WaitForInstanceCompletion(
            spb.GetInstanceRequest(instanceId="http-1", getInputsAndOutputs=True),
            metadata=metadata,
            timeout=20,
        )
        assert done.workflowState.output.value == "6"
