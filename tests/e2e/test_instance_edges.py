"""The Python client, the gRPC sidecar service and the HTTP API do the same thing for the same
instance operation: all three go through ``InstanceOperations``.

Each test here pins one place where they used to differ. The gRPC server and the HTTP app run
in this process, on the runtime's own store, as ``treadle serve`` runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import grpc
import httpx
import pytest
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue

import treadle as wf
from treadle.core.history import ExecutionResumed, ExecutionSuspended
from treadle.errors import InvalidInputError
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server._proto import orchestrator_service_pb2_grpc as stubs
from treadle.server.grpc import create_server
from treadle.server.grpc_workers import SidecarWorkers
from treadle.server.http import create_app
from treadle.store.base import NewInstance
from treadle.store.sqlite import SqliteStore

from .helpers import events_of, kinds, wait_until

DAPR = "/v1.0/workflows/dapr"


class CountingStore(SqliteStore):
    """A SQLite store that records the instances created through ``create_instance`` (a start
    that a runtime of this process took commits with its first turn instead)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.created: list[str] = []

    def create_instance(self, new: NewInstance) -> None:
        self.created.append(new.instance_id)
        super().create_instance(new)


def _waiter(ctx: wf.WorkflowContext, _: Any) -> Any:
    got = yield ctx.wait_for_external_event("go")
    return got


@dataclass
class Edges:
    """The three edges over one store and one runtime."""

    store: CountingStore
    client: wf.WorkflowClient
    stub: stubs.TaskHubSidecarServiceStub
    app: Any

    def http(self, method: str, url: str, content: bytes | None = None) -> httpx.Response:
        """One request to the HTTP app."""

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                return await http.request(method, url, content=content)

        return anyio.run(call)

    def stored_input(self, instance_id: str) -> str | None:
        record = self.store.get_instance(instance_id)
        assert record is not None, instance_id
        return record.input


@pytest.fixture
def edges(tmp_path: Path) -> Iterator[Edges]:
    store = CountingStore(f"sqlite:///{tmp_path / 'edges.db'}")
    workers = SidecarWorkers()
    runtime = wf.WorkflowRuntime(store, remote=workers)
    runtime.register_workflow(_waiter, name="waiter")
    client = wf.WorkflowClient(store)
    server, port = create_server(runtime, client, workers, port=0)
    runtime.start()
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    # (the generated stub module carries no annotations)
    stub = stubs.TaskHubSidecarServiceStub(channel)  # type: ignore[no-untyped-call]
    try:
        yield Edges(store, client, stub, create_app(client))
    finally:
        channel.close()
        workers.close()
        server.stop(grace=None).wait(5)
        runtime.shutdown(timeout=2)
        store.close()


def grpc_code(method: Callable[[Any], Any], request: Message) -> grpc.StatusCode:
    """The status a gRPC call fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as info:
        method(request)
    code: grpc.StatusCode = info.value.code()
    return code


def test_http_stores_the_payload_text_received_as_grpc_does(edges: Edges) -> None:
    # HTTP used to decode the body and store it encoded again (compact); gRPC kept the text.
    text = '{"b": 1,  "a": [1, 2.50]}'
    edges.stub.StartInstance(
        spb.CreateInstanceRequest(instanceId="g-1", name="waiter", input=StringValue(value=text))
    )
    started = edges.http("POST", f"{DAPR}/waiter/start?instanceID=h-1", text.encode())
    assert started.status_code == 202, started.text
    assert edges.stored_input("g-1") == edges.stored_input("h-1") == text
    assert edges.http("GET", f"{DAPR}/h-1").json()["properties"]["dapr.workflow.input"] == text

    edges.stub.RaiseEvent(
        spb.RaiseEventRequest(instanceId="g-1", name="go", input=StringValue(value=text))
    )
    raised = edges.http("POST", f"{DAPR}/h-1/raiseEvent/go", text.encode())
    assert raised.status_code == 202, raised.text
    for iid in ("g-1", "h-1"):
        state = edges.client.wait_for_workflow_completion(iid, timeout_in_seconds=10)
        assert state is not None and state.serialized_output is not None
        (event,) = events_of(edges.client, iid, "EventRaised")
        assert event.input == text


def test_grpc_rerun_stores_the_new_input_text_received(edges: Edges) -> None:
    # A rerun's new input used to be decoded and encoded again by the client.
    edges.client.schedule_new_workflow("waiter", instance_id="src")
    edges.client.raise_workflow_event("src", "go", data=1)
    assert edges.client.wait_for_workflow_completion("src", timeout_in_seconds=10) is not None
    text = '{"again":  true}'
    rerun = edges.stub.RerunWorkflowFromEvent(
        spb.RerunWorkflowFromEventRequest(
            sourceInstanceID="src",
            eventID=0,
            newInstanceID="re-1",
            input=StringValue(value=text),
            overwriteInput=True,
        )
    )
    assert rerun.newInstanceID == "re-1" and edges.stored_input("re-1") == text


def test_the_client_refuses_a_malformed_instance_id_as_grpc_and_http_do(edges: Edges) -> None:
    # The client answered None (not found) for an id no instance can have; the others refused.
    bad = "bad\nid"
    with pytest.raises(InvalidInputError, match="control characters"):
        edges.client.get_workflow_state(bad)
    for call in (
        edges.client.wait_for_workflow_completion,
        edges.client.get_workflow_history,
        edges.client.terminate_workflow,
        edges.client.pause_workflow,
        edges.client.resume_workflow,
        edges.client.purge_workflow,
    ):
        with pytest.raises(InvalidInputError):
            call(bad)
    with pytest.raises(InvalidInputError):
        edges.client.raise_workflow_event(bad, "go")
    request = spb.GetInstanceRequest(instanceId=bad)
    assert grpc_code(edges.stub.GetInstance, request) is grpc.StatusCode.INVALID_ARGUMENT
    response = edges.http("GET", f"{DAPR}/bad%0Aid")
    assert response.status_code == 400 and response.json()["errorCode"] == "ERR_INSTANCE_ID_INVALID"


def test_one_rule_for_workflow_and_event_names_on_every_edge(edges: Edges) -> None:
    # The client accepted any name; gRPC allowed control characters; HTTP refused names over
    # 256 characters. Now: non-empty, printable, at most 1024 characters, everywhere.
    long_ok, too_long = "n" * 300, "n" * 1025
    edges.client.schedule_new_workflow(long_ok, instance_id="c-1")
    edges.stub.StartInstance(spb.CreateInstanceRequest(instanceId="g-1", name=long_ok))
    assert edges.http("POST", f"{DAPR}/{long_ok}/start?instanceID=h-1").status_code == 202
    edges.client.raise_workflow_event("c-1", long_ok)
    edges.stub.RaiseEvent(spb.RaiseEventRequest(instanceId="g-1", name=long_ok))
    assert edges.http("POST", f"{DAPR}/h-1/raiseEvent/{long_ok}").status_code == 202

    for name in ("", too_long, "tab\there"):
        with pytest.raises(InvalidInputError, match="workflow name"):
            edges.client.schedule_new_workflow(name, instance_id="c-2")
        with pytest.raises(InvalidInputError, match="event name"):
            edges.client.raise_workflow_event("c-1", name)
        start = spb.CreateInstanceRequest(instanceId="g-2", name=name)
        assert grpc_code(edges.stub.StartInstance, start) is grpc.StatusCode.INVALID_ARGUMENT
        event = spb.RaiseEventRequest(instanceId="g-1", name=name)
        assert grpc_code(edges.stub.RaiseEvent, event) is grpc.StatusCode.INVALID_ARGUMENT
    for path in (f"{too_long}/start", "tab%09here/start", f"h-1/raiseEvent/{too_long}"):
        response = edges.http("POST", f"{DAPR}/{path}")
        assert response.status_code == 400 and response.json()["errorCode"] == "ERR_BAD_REQUEST"
    assert edges.store.get_instance("c-2") is None and edges.store.get_instance("g-2") is None


def test_grpc_and_http_starts_take_the_in_process_path_as_the_client_does(edges: Edges) -> None:
    # gRPC starts went to the store and waited for a worker to claim them; now a runtime of
    # this process takes them with their first turn, as the client's (and HTTP's) starts.
    edges.client.schedule_new_workflow("waiter", instance_id="c-1")
    edges.stub.StartInstance(spb.CreateInstanceRequest(instanceId="g-1", name="waiter"))
    assert edges.http("POST", f"{DAPR}/waiter/start?instanceID=h-1").status_code == 202
    for iid in ("c-1", "g-1", "h-1"):
        # durable with its first turn when the start returned: no claim in between
        assert kinds(edges.client, iid) == ["OrchestratorStarted", "ExecutionStarted"]
    assert edges.store.created == []
    # a workflow no runtime of this process runs (an SDK worker's) is created in the store
    edges.stub.StartInstance(spb.CreateInstanceRequest(instanceId="g-2", name="sdk_workflow"))
    assert edges.store.created == ["g-2"]


def test_grpc_suspend_and_resume_keep_their_reason_in_the_history(edges: Edges) -> None:
    # The reason in SuspendRequest and ResumeRequest used to be dropped.
    edges.client.schedule_new_workflow("waiter", instance_id="s-1")
    edges.stub.SuspendInstance(
        spb.SuspendRequest(instanceId="s-1", reason=StringValue(value="maintenance"))
    )
    edges.stub.ResumeInstance(spb.ResumeRequest(instanceId="s-1", reason=StringValue(value="ok")))
    wait_until(
        lambda: events_of(edges.client, "s-1", "ExecutionResumed"),
        what="the resume in s-1's history",
    )
    (suspended,) = events_of(edges.client, "s-1", "ExecutionSuspended")
    (resumed,) = events_of(edges.client, "s-1", "ExecutionResumed")
    assert isinstance(suspended, ExecutionSuspended) and suspended.input == "maintenance"
    assert isinstance(resumed, ExecutionResumed) and resumed.input == "ok"
