"""One set of rules for what comes in, on every edge and on both stores.

Regressions, on PostgreSQL (whose text cannot hold a NUL character): a NUL in the HTTP
``name`` filter was a 500 with a traceback, a page token with a huge time another; child
workflows that an SDK worker or a workflow asked for with ids ``""``, ``"a\\x00b"`` or 5,000
characters, or with an empty name, were created (SQLite) or failed the parent with a store
error (PostgreSQL), and no API could reach them. Payloads with a NUL inside a JSON string
are fine: both stores hold them as the escape ``\\u0000``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf.wrappers_pb2 import StringValue

import treadle as wf
from treadle.cli import main
from treadle.core.history import ExecutionSuspended
from treadle.errors import InvalidInputError
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_actions_pb2 as apb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.store import open_store
from treadle.store.base import NewInstance

from .conftest import EVERY_BACKEND
from .helpers import Workflow, finish, wait_until
from .sidecar_inprocess import InProcessSidecar, grpc_error, in_process_sidecar

pytestmark = pytest.mark.parametrize("backend", EVERY_BACKEND, indirect=True)

BAD_IDS = ["a\x00b", "x" * 5000, "tab\tid"]
LIST = "/api/v1/workflows"


def _echo(ctx: wf.WorkflowContext, value: Any) -> Workflow[Any]:
    got = yield ctx.wait_for_external_event("go")
    return [value, got]


def _parent(ctx: wf.WorkflowContext, child_id: str) -> Workflow[Any]:
    return (yield ctx.call_child_workflow("echo", input=1, instance_id=child_id))


def _setup(runtime: wf.WorkflowRuntime) -> None:
    runtime.register_workflow(_echo, name="echo")
    runtime.register_workflow(_parent, name="parent")


@pytest.fixture
def sidecar(store_url: str) -> Iterator[InProcessSidecar]:
    with in_process_sidecar(store_url, _setup) as served:
        yield served


def test_nul_in_filters_and_tokens_is_a_clear_400_on_every_edge(sidecar: InProcessSidecar) -> None:
    sidecar.client.schedule_new_workflow("echo", instance_id="one")
    for query in (
        "name=a%00b",
        "page_token=a%00b",
        "page_token=1%7Ca%00b",
        "name=" + "n" * 1025,
        "page_token=" + "t" * 400,
    ):
        response = sidecar.http("GET", f"{LIST}?{query}")
        assert response.status_code == 400, (query[:40], response.status_code, response.text)
        assert response.json()["errorCode"] == "ERR_BAD_REQUEST"
    # a token of the right shape is the store's to judge: never a 500
    huge = sidecar.http("GET", f"{LIST}?page_token=99999999999999999999999%7Cx")
    assert huge.status_code in (200, 400), huge.text
    assert sidecar.http("GET", f"{LIST}?name=echo").json()["workflows"][0]["instance_id"] == "one"

    stub = sidecar.stub()
    for token in ("a\x00b", "1|a\x00b", "t" * 400):
        listing = spb.ListInstanceIDsRequest(continuationToken=token)
        error = grpc_error(stub.ListInstanceIDs, listing)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (token, error.details())
    for name in ("hello\x00x", ""):
        start = spb.CreateInstanceRequest(instanceId="g-1", name=name)
        assert grpc_error(stub.StartInstance, start).code() is grpc.StatusCode.INVALID_ARGUMENT
    for iid in BAD_IDS:
        start = spb.CreateInstanceRequest(instanceId=iid, name="echo")
        assert grpc_error(stub.StartInstance, start).code() is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(InvalidInputError):
            sidecar.client.schedule_new_workflow("echo", instance_id=iid)
    with pytest.raises(InvalidInputError, match="workflow name filter"):
        sidecar.client.list_workflows(name="a\x00b")
    with pytest.raises(InvalidInputError, match="continuation token"):
        sidecar.client.list_workflows(continuation_token="1|a\x00b")
    event = spb.RaiseEventRequest(instanceId="one", name="go\x00")
    assert grpc_error(stub.RaiseEvent, event).code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [s.instance_id for s in sidecar.client.list_workflows().states] == ["one"]


def test_a_nul_inside_json_payloads_is_stored_and_read_back(sidecar: InProcessSidecar) -> None:
    text = "nul\x00inside"
    sidecar.client.schedule_new_workflow("echo", input=text, instance_id="c-1")
    sidecar.client.raise_workflow_event("c-1", "go", data={"k": text})
    state = finish(sidecar.client, "c-1")
    assert state.runtime_status is wf.WorkflowStatus.COMPLETED
    assert state.serialized_output == '["nul\\u0000inside",{"k":"nul\\u0000inside"}]'

    started = sidecar.http("POST", "/v1.0/workflows/dapr/echo/start?instanceID=h-1", b'"a\\u0000b"')
    assert started.status_code == 202, started.text
    raised = sidecar.http("POST", "/v1.0/workflows/dapr/h-1/raiseEvent/go", b'"\\u0000"')
    assert raised.status_code == 202, raised.text
    assert finish(sidecar.client, "h-1").serialized_output == '["a\\u0000b","\\u0000"]'

    stub = sidecar.stub()
    start = spb.CreateInstanceRequest(instanceId="g-1", name="echo")
    stub.StartInstance(start, timeout=10)
    stub.SuspendInstance(spb.SuspendRequest(instanceId="g-1", reason=StringValue(value="a\x00b")))
    stub.ResumeInstance(spb.ResumeRequest(instanceId="g-1"))
    stub.RaiseEvent(spb.RaiseEventRequest(instanceId="g-1", name="go"), timeout=10)
    assert finish(sidecar.client, "g-1").runtime_status is wf.WorkflowStatus.COMPLETED
    history = sidecar.client.get_workflow_history("g-1")
    suspended = [e for e in history if isinstance(e, ExecutionSuspended)]
    assert [e.input for e in suspended] == ["a\x00b"]


@pytest.mark.parametrize("child_id", BAD_IDS)
def test_a_workflow_cannot_start_a_child_no_api_could_reach(
    sidecar: InProcessSidecar, child_id: str
) -> None:
    iid = sidecar.client.schedule_new_workflow("parent", input=child_id)
    state = finish(sidecar.client, iid)
    assert state.runtime_status is wf.WorkflowStatus.FAILED
    failure = state.failure_details
    assert failure is not None and failure.error_type == "InvalidInputError"
    assert "child workflow instance id" in failure.message
    assert [s.instance_id for s in sidecar.client.list_workflows().states] == [iid]


def test_a_default_child_id_stays_within_the_limit(sidecar: InProcessSidecar) -> None:
    def long_parent(ctx: wf.WorkflowContext, _: Any) -> Workflow[Any]:
        return (yield ctx.call_child_workflow("echo", input=2))

    sidecar.runtime.register_workflow(long_parent, name="long_parent")
    iid = sidecar.client.schedule_new_workflow("long_parent", instance_id="p" * 256)
    children = wait_for_child(sidecar, iid)
    (child,) = children
    assert len(child) <= 256 and child.startswith("p" * 200)
    sidecar.client.raise_workflow_event(child, "go", data=3)  # reachable by every API
    assert finish(sidecar.client, iid).serialized_output == "[2,3]"


def wait_for_child(sidecar: InProcessSidecar, parent: str) -> list[str]:
    def children() -> list[str]:
        return [
            s.instance_id for s in sidecar.client.list_workflows().states if s.instance_id != parent
        ]

    return wait_until(children, what="the child workflow")


def _child_action(instance_id: str, name: str = "echo") -> apb.WorkflowAction:
    return apb.WorkflowAction(
        id=0,
        createChildWorkflow=apb.CreateChildWorkflowAction(
            instanceId=instance_id, name=name, input=StringValue(value="1")
        ),
    )


@pytest.mark.timeout(60)
def test_an_sdk_workers_invalid_child_workflow_fails_the_turn_and_creates_nothing(
    sidecar: InProcessSidecar,
) -> None:
    # ids "", NUL, 5,000 characters; an empty name; a NUL in an activity or event name
    bad_actions = {
        "s-empty": _child_action(""),
        "s-nul": _child_action("a\x00b"),
        "s-long": _child_action("x" * 5000),
        "s-noname": _child_action("child-ok", name=""),
        "s-activity": apb.WorkflowAction(
            id=0, scheduleTask=apb.ScheduleTaskAction(name="act\x00ivity")
        ),
        "s-event": apb.WorkflowAction(
            id=0,
            sendEvent=apb.SendEventAction(
                instance=opb.WorkflowInstance(instanceId="t\x00"), name="e"
            ),
        ),
    }
    stub = sidecar.stub()
    for iid in bad_actions:
        stub.StartInstance(spb.CreateInstanceRequest(instanceId=iid, name="sdk_wf"), timeout=10)
    stream = stub.GetWorkItems(spb.GetWorkItemsRequest(), timeout=50)
    attempts: dict[str, int] = dict.fromkeys(bad_actions, 0)
    while any(n < 3 for n in attempts.values()):  # MAX_TURN_ATTEMPTS
        item = next(stream)
        iid = item.workflowRequest.instanceId
        attempts[iid] += 1
        answer = spb.WorkflowResponse(
            instanceId=iid, actions=[bad_actions[iid]], completionToken=item.completionToken
        )
        error = grpc_error(stub.CompleteOrchestratorTask, answer)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (iid, error.details())
    stream.cancel()
    for iid in bad_actions:
        state = finish(sidecar.client, iid)
        assert state.runtime_status is wf.WorkflowStatus.FAILED, iid
        failure = state.failure_details
        assert failure is not None and "treadle cannot run" in failure.message, iid
    listed = sorted(s.instance_id for s in sidecar.client.list_workflows().states)
    assert listed == sorted(bad_actions)
    assert sidecar.store.get_instance("child-ok") is None


def test_the_command_line_refuses_what_the_store_cannot_hold(store_url: str) -> None:
    runner = CliRunner()
    store = open_store(store_url)
    try:
        store.create_instance(NewInstance("one", "echo", None, "e1"))
    finally:
        store.close()
    for args in (
        ["workflow", "list", "--name", "a\x01b"],
        ["workflow", "list", "--page-token", "1|a\x01b"],
        ["workflow", "get", "x" * 300],
        ["workflow", "raise-event", "one", "bad\tname"],
        ["workflow", "run", "echo", "--id", "tab\tid"],
    ):
        result = runner.invoke(main, ["--db", store_url, *args])
        assert result.exit_code == 1, (args, result.output)
        assert "Error:" in result.output and "Traceback" not in result.output, result.output
    listed = runner.invoke(main, ["--db", store_url, "workflow", "list", "-o", "json"])
    assert listed.exit_code == 0 and '"one"' in listed.output
