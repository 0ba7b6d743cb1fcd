"""The HTTP API: Dapr's workflow routes, the JSON API, health, metrics, auth and every error.

The app runs over a real runtime and client on a SQLite file. Requests go through httpx's
ASGI transport on an event loop in a background thread (a blocking portal), so the tests stay
synchronous and wait with ``wait_until``. Every response is checked to be below 500 unless a
test says a 5xx is expected: bad input must never reach the catch-all.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio.from_thread
import httpx
import pytest

import treadle as wf
from treadle.core.history import event_to_dict
from treadle.server.http import create_app
from treadle.store.base import InstancePage, InstanceQuery, InstanceRecord
from treadle.store.sqlite import SqliteStore

from .helpers import Workflow, state_of, wait_until

DAPR = "/v1.0/workflows/dapr"
BETA = "/v1.0-beta1/workflows/dapr"
ORDER = {"Name": "Paperclips", "Quantity": 1, "TotalCost": 9.95}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


class Http:
    """A synchronous face on ``httpx.AsyncClient`` over the app's ASGI interface."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(
            transport=transport, base_url="http://treadle", headers=headers
        )

    def request(
        self, method: str, url: str, *, allow_5xx: bool = False, **kwargs: Any
    ) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        response = self._portal.call(call)
        if not allow_5xx:
            assert response.status_code < 500, (method, url, response.status_code, response.text)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._portal.call(self._client.aclose)
        self._portal_cm.__exit__(None, None, None)


@pytest.fixture
def serve() -> Iterator[Callable[..., Http]]:
    """``serve(client, headers=..., **create_app_options)``: an Http on a new app."""
    made: list[Http] = []

    def make(
        client: wf.WorkflowClient, headers: dict[str, str] | None = None, **options: Any
    ) -> Http:
        http = Http(create_app(client, **options), headers)
        made.append(http)
        return http

    yield make
    for http in made:
        http.close()


@pytest.fixture
def http(serve: Callable[..., Http], client: wf.WorkflowClient) -> Http:
    return serve(client)


@pytest.fixture
def workflows(runtime: wf.WorkflowRuntime) -> wf.WorkflowRuntime:
    """The runtime with the workflows these tests start by name."""

    @runtime.activity
    def process(ctx: wf.WorkflowActivityContext, order: dict[str, Any]) -> dict[str, Any]:
        return {"Processed": True, "Name": order["Name"]}

    @runtime.activity
    def explode(ctx: wf.WorkflowActivityContext, _: object) -> None:
        raise ValueError("the paperclip machine exploded")

    @runtime.workflow(name="OrderProcessingWorkflow")
    def order_processing(ctx: wf.WorkflowContext, order: dict[str, Any]) -> Workflow[Any]:
        ctx.set_custom_status("awaiting approval")
        approved = yield ctx.wait_for_external_event("approve")
        if not approved:
            return {"Processed": False}
        return (yield ctx.call_activity(process, input=order))

    @runtime.workflow(name="Failing")
    def failing(ctx: wf.WorkflowContext, _: object) -> Workflow[None]:
        yield ctx.call_activity(explode)

    @runtime.workflow(name="Waiter")
    def waiter(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
        return (yield ctx.wait_for_external_event("go"))

    @runtime.workflow(name="Echo")
    def echo(ctx: wf.WorkflowContext, value: object) -> Workflow[object]:
        return value
        yield  # a generator, as every workflow

    return runtime


def status(http: Http, instance_id: str, base: str = DAPR) -> str:
    return str(http.get(f"{base}/{instance_id}").json()["runtimeStatus"])


def wait_status(http: Http, instance_id: str, want: str, base: str = DAPR) -> dict[str, Any]:
    """Poll Dapr's status route until the instance has status ``want``; return the body."""

    def check() -> dict[str, Any]:
        body: dict[str, Any] = http.get(f"{base}/{instance_id}").json()
        return body if body["runtimeStatus"] == want else {}

    return wait_until(check, what=f"{instance_id} to be {want}")


def error_of(response: httpx.Response, status_code: int, code: str) -> str:
    """Assert a Dapr-style JSON error; return its message."""
    assert response.status_code == status_code, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["errorCode"] == code, body
    message = body["message"]
    assert isinstance(message, str) and message
    return message


# ---- the Dapr workflow API ------------------------------------------------------------------
@pytest.mark.parametrize("base", [DAPR, BETA])
def test_async_http_api_pattern(workflows: wf.WorkflowRuntime, http: Http, base: str) -> None:
    started = http.post(
        f"{base}/OrderProcessingWorkflow/start?instanceID=12345678", content=json.dumps(ORDER)
    )
    assert started.status_code == 202
    assert started.headers["content-type"] == "application/json"
    assert started.json() == {"instanceID": "12345678"}

    running = wait_status(http, "12345678", "RUNNING", base)
    assert running["instanceID"] == "12345678"
    assert running["workflowName"] == "OrderProcessingWorkflow"
    assert RFC3339.match(running["createdAt"]) and RFC3339.match(running["lastUpdatedAt"])
    assert running["properties"] == {
        "dapr.workflow.input": json.dumps(ORDER),  # the body as sent
        "dapr.workflow.custom_status": '"awaiting approval"',
    }

    raised = http.post(f"{base}/12345678/raiseEvent/approve", content=b"true")
    assert raised.status_code == 202 and raised.json() == {}

    done = wait_status(http, "12345678", "COMPLETED", base)
    props = done["properties"]
    assert json.loads(props["dapr.workflow.output"]) == {"Processed": True, "Name": "Paperclips"}
    assert json.loads(props["dapr.workflow.input"]) == ORDER
    assert not any(key.startswith("dapr.workflow.failure") for key in props)
    assert done["lastUpdatedAt"] >= done["createdAt"]


def test_failed_workflow_reports_failure_properties(
    workflows: wf.WorkflowRuntime, http: Http
) -> None:
    iid = http.post(f"{DAPR}/Failing/start").json()["instanceID"]
    props = wait_status(http, iid, "FAILED")["properties"]
    # The activity's error fails the workflow as a TaskFailedError (as in durabletask).
    assert props["dapr.workflow.failure.error_type"] == "TaskFailedError"
    assert "the paperclip machine exploded" in props["dapr.workflow.failure.error_message"]
    assert "dapr.workflow.failure.stack_trace" in props
    assert "dapr.workflow.output" not in props
    assert "dapr.workflow.input" not in props  # an empty body is no input


def test_start_without_instance_id_generates_one(
    workflows: wf.WorkflowRuntime, http: Http, client: wf.WorkflowClient
) -> None:
    response = http.post(f"{DAPR}/Echo/start", content=b'{"n": 1}')
    assert response.status_code == 202
    iid = response.json()["instanceID"]
    assert iid
    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=10)
    assert state is not None and json.loads(state.serialized_output or "") == {"n": 1}


def test_unregistered_workflow_name_is_accepted_and_stays_pending(
    http: Http, client: wf.WorkflowClient
) -> None:
    # A worker connected later (an SDK over gRPC) may register the name: start is not checked.
    response = http.post(f"{DAPR}/NotRegisteredYet/start?instanceID=later")
    assert response.status_code == 202
    assert client.get_workflow_state("later") is not None


def test_raise_event_pause_and_resume(workflows: wf.WorkflowRuntime, http: Http) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=w-1")
    wait_status(http, "w-1", "RUNNING")

    assert http.post(f"{DAPR}/w-1/pause").status_code == 202
    wait_status(http, "w-1", "SUSPENDED")
    # Events sent while suspended are kept and delivered on resume.
    assert http.post(f"{DAPR}/w-1/raiseEvent/go", content=b'{"k": [1, 2]}').status_code == 202
    assert status(http, "w-1") == "SUSPENDED"

    assert http.post(f"{BETA}/w-1/resume").status_code == 202
    done = wait_status(http, "w-1", "COMPLETED")
    assert json.loads(done["properties"]["dapr.workflow.output"]) == {"k": [1, 2]}


def test_pause_resume_and_terminate_show_when_they_return(
    workflows: wf.WorkflowRuntime, http: Http
) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=w-3")
    wait_status(http, "w-3", "RUNNING")
    assert http.post(f"{DAPR}/w-3/pause").status_code == 202
    assert status(http, "w-3") == "SUSPENDED"
    assert http.post(f"{DAPR}/w-3/resume").status_code == 202
    assert status(http, "w-3") == "RUNNING"
    assert http.post(f"{DAPR}/w-3/terminate").status_code == 202
    assert status(http, "w-3") == "TERMINATED"


def test_raise_event_with_empty_body_delivers_null(
    workflows: wf.WorkflowRuntime, http: Http
) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=w-2")
    wait_status(http, "w-2", "RUNNING")
    assert http.post(f"{DAPR}/w-2/raiseEvent/go").status_code == 202
    done = wait_status(http, "w-2", "COMPLETED")
    assert "dapr.workflow.output" not in done["properties"]


def test_terminate(workflows: wf.WorkflowRuntime, http: Http) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=t-1")
    wait_status(http, "t-1", "RUNNING")
    response = http.post(f"{DAPR}/t-1/terminate")
    assert response.status_code == 202 and response.json() == {}
    wait_status(http, "t-1", "TERMINATED")
    assert http.post(f"{DAPR}/t-1/terminate").status_code == 202  # already finished: no-op


def test_purge_refuses_a_running_instance_then_deletes_a_finished_one(
    workflows: wf.WorkflowRuntime, http: Http
) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=p-1")
    wait_status(http, "p-1", "RUNNING")
    message = error_of(http.post(f"{DAPR}/p-1/purge"), 409, "ERR_PURGE_WORKFLOW")
    assert "p-1" in message

    http.post(f"{DAPR}/p-1/terminate")
    wait_status(http, "p-1", "TERMINATED")
    assert http.post(f"{BETA}/p-1/purge").status_code == 202
    error_of(http.get(f"{DAPR}/p-1"), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    error_of(http.post(f"{DAPR}/p-1/purge"), 404, "ERR_INSTANCE_ID_NOT_FOUND")


def test_alpha1_prefix_and_any_component_name(workflows: wf.WorkflowRuntime, http: Http) -> None:
    started = http.post("/v1.0-alpha1/workflows/mycomponent/Echo/start?instanceID=a-1")
    assert started.status_code == 202
    wait_status(http, "a-1", "COMPLETED", base="/v1.0-alpha1/workflows/other")


def test_duplicate_start_of_a_running_instance_is_409(
    workflows: wf.WorkflowRuntime, http: Http
) -> None:
    assert http.post(f"{DAPR}/Waiter/start?instanceID=dup").status_code == 202
    message = error_of(http.post(f"{DAPR}/Waiter/start?instanceID=dup"), 409, "ERR_START_WORKFLOW")
    assert "dup" in message
    # Once finished, the id may be reused (as in Dapr).
    http.post(f"{DAPR}/dup/terminate")
    wait_status(http, "dup", "TERMINATED")
    assert http.post(f"{DAPR}/Echo/start?instanceID=dup", content=b"7").status_code == 202
    done = wait_status(http, "dup", "COMPLETED")
    assert done["workflowName"] == "Echo" and done["properties"]["dapr.workflow.output"] == "7"


# ---- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"{DAPR}/missing"),
        ("GET", f"{BETA}/missing"),
        ("POST", f"{DAPR}/missing/terminate"),
        ("POST", f"{DAPR}/missing/raiseEvent/go"),
        ("POST", f"{DAPR}/missing/pause"),
        ("POST", f"{DAPR}/missing/resume"),
        ("POST", f"{DAPR}/missing/purge"),
        ("GET", "/api/v1/workflows/missing"),
        ("GET", "/api/v1/workflows/missing/history"),
    ],
)
def test_unknown_instance_is_404(http: Http, method: str, path: str) -> None:
    message = error_of(http.request(method, path), 404, "ERR_INSTANCE_ID_NOT_FOUND")
    assert "missing" in message


@pytest.mark.parametrize(
    "path",
    [f"{DAPR}/Echo/start?instanceID=x", f"{DAPR}/some-id/raiseEvent/go"],
)
@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b'{"a": 1', b"[1, 2] 3"])
def test_invalid_json_body_is_400(
    http: Http, client: wf.WorkflowClient, path: str, body: bytes
) -> None:
    client.schedule_new_workflow("Echo", instance_id="some-id")
    message = error_of(http.post(path, content=body), 400, "ERR_MALFORMED_REQUEST")
    assert "JSON" in message


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("instanceID=has%20space", "ERR_INSTANCE_ID_INVALID"),
        ("instanceID=a.b", "ERR_INSTANCE_ID_INVALID"),
        ("instanceID=a%2Fb", "ERR_INSTANCE_ID_INVALID"),
        ("instanceID=%01", "ERR_INSTANCE_ID_INVALID"),
        ("instanceID=" + "x" * 257, "ERR_INSTANCE_ID_TOO_LONG"),
    ],
)
def test_malformed_new_instance_id_is_400(
    http: Http, client: wf.WorkflowClient, query: str, code: str
) -> None:
    error_of(http.post(f"{DAPR}/Echo/start?{query}"), 400, code)
    assert client.list_workflows().states == []


@pytest.mark.parametrize(
    "instance_id", ["%01control", "x" * 257, "tab%09inside"], ids=["ctrl", "long", "tab"]
)
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", f"{DAPR}/{{}}"),
        ("POST", f"{DAPR}/{{}}/terminate"),
        ("POST", f"{DAPR}/{{}}/raiseEvent/go"),
        ("POST", f"{DAPR}/{{}}/purge"),
        ("GET", "/api/v1/workflows/{}"),
        ("GET", "/api/v1/workflows/{}/history"),
    ],
)
def test_malformed_instance_id_in_path_is_400(
    http: Http, method: str, template: str, instance_id: str
) -> None:
    error_of(http.request(method, template.format(instance_id)), 400, "ERR_INSTANCE_ID_INVALID")


def test_bad_workflow_and_event_names_are_400(http: Http, client: wf.WorkflowClient) -> None:
    error_of(http.post(f"{DAPR}/{'n' * 1025}/start"), 400, "ERR_BAD_REQUEST")
    error_of(http.post(f"{DAPR}/bad%01name/start"), 400, "ERR_BAD_REQUEST")
    client.schedule_new_workflow("Echo", instance_id="ev")
    error_of(http.post(f"{DAPR}/ev/raiseEvent/{'e' * 1025}"), 400, "ERR_BAD_REQUEST")


def test_body_over_the_limit_is_413_by_content_length_and_by_stream(
    serve: Callable[..., Http], client: wf.WorkflowClient
) -> None:
    http = serve(client, max_body_bytes=64)
    at_limit = json.dumps("x" * 62).encode()
    assert len(at_limit) == 64
    assert http.post(f"{DAPR}/Echo/start?instanceID=ok", content=at_limit).status_code == 202

    over = json.dumps("x" * 63).encode()
    message = error_of(
        http.post(f"{DAPR}/Echo/start?instanceID=big", content=over), 413, "ERR_BODY_READ"
    )
    assert "65 bytes" in message and "64" in message
    error_of(http.post(f"{DAPR}/ok/raiseEvent/e", content=over), 413, "ERR_BODY_READ")

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the size is only known by reading the stream.
        yield b'"' + b"x" * 40
        yield b"x" * 40 + b'"'

    response = http.post(f"{DAPR}/Echo/start?instanceID=streamed", content=chunks())
    assert "content-length" not in response.request.headers
    error_of(response, 413, "ERR_BODY_READ")
    assert client.get_workflow_state("big") is None
    assert client.get_workflow_state("streamed") is None


def test_bad_content_length_is_400(http: Http) -> None:
    response = http.post(f"{DAPR}/Echo/start", content=b"1", headers={"content-length": "one"})
    error_of(response, 400, "ERR_BODY_READ")


def test_unknown_route_and_wrong_method_are_json_errors(http: Http) -> None:
    error_of(http.get("/v1.0/nothing/here"), 404, "ERR_NOT_FOUND")
    response = http.get(f"{DAPR}/some-id/terminate")
    error_of(response, 405, "ERR_METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "POST"
    # Dapr has no DELETE route for purge.
    error_of(http.request("DELETE", f"{DAPR}/some-id"), 405, "ERR_METHOD_NOT_ALLOWED")


@pytest.mark.parametrize(
    "path",
    [
        f"{DAPR}/x",
        f"{DAPR}/Echo/start",
        f"{DAPR}/x/terminate",
        "/api/v1/workflows",
        "/api/v1/workflows/x/history",
        "/metrics",
        "/no/such/route",
    ],
)
def test_api_token_is_required_everywhere_but_health(
    serve: Callable[..., Http], client: wf.WorkflowClient, path: str
) -> None:
    anonymous = serve(client, api_token="s3cret")
    method = "POST" if path.endswith(("start", "terminate")) else "GET"
    message = error_of(anonymous.request(method, path), 401, "ERR_UNAUTHORIZED")
    assert "dapr-api-token" in message
    wrong = serve(client, headers={"dapr-api-token": "guess"}, api_token="s3cret")
    error_of(wrong.request(method, path), 401, "ERR_UNAUTHORIZED")
    right = serve(client, headers={"dapr-api-token": "s3cret"}, api_token="s3cret")
    assert right.request(method, path).status_code != 401


def test_health_routes_stay_open_with_a_token(
    serve: Callable[..., Http], client: wf.WorkflowClient
) -> None:
    http = serve(client, api_token="s3cret")
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/v1.0/healthz").status_code == 204
    assert http.get("/v1.0/healthz/outbound").status_code == 204
    error_of(http.post("/healthz"), 401, "ERR_UNAUTHORIZED")


def test_the_started_workflow_sees_the_token_protected_start(
    workflows: wf.WorkflowRuntime, serve: Callable[..., Http], client: wf.WorkflowClient
) -> None:
    http = serve(client, headers={"dapr-api-token": "s3cret"}, api_token="s3cret")
    assert http.post(f"{DAPR}/Echo/start?instanceID=tok", content=b'"hi"').status_code == 202
    assert wait_status(http, "tok", "COMPLETED")["properties"]["dapr.workflow.output"] == '"hi"'


# ---- JSON API --------------------------------------------------------------------------------
def test_list_pages_newest_first_and_filters(
    workflows: wf.WorkflowRuntime, http: Http, client: wf.WorkflowClient
) -> None:
    ids = [f"e-{i}" for i in range(5)]
    for i, iid in enumerate(ids):
        http.post(f"{DAPR}/Echo/start?instanceID={iid}", content=str(i))
    http.post(f"{DAPR}/Waiter/start?instanceID=waiting")
    for iid in ids:
        wait_status(http, iid, "COMPLETED")
    wait_status(http, "waiting", "RUNNING")

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"limit": "2", **({"page_token": token} if token else {})}
        body = http.get("/api/v1/workflows", params=params).json()
        assert len(body["workflows"]) <= 2
        seen += [w["instance_id"] for w in body["workflows"]]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            break
    assert pages == 3
    assert seen == ["waiting", *reversed(ids)]

    first = http.get("/api/v1/workflows", params={"limit": "1"}).json()["workflows"][0]
    assert first == state_of(client, "waiting").to_json()

    by_status = http.get("/api/v1/workflows", params={"status": "running"}).json()
    assert [w["instance_id"] for w in by_status["workflows"]] == ["waiting"]
    both = http.get("/api/v1/workflows?status=RUNNING,COMPLETED&name=Echo").json()
    assert [w["instance_id"] for w in both["workflows"]] == list(reversed(ids))
    repeated = http.get("/api/v1/workflows?status=TERMINATED&status=RUNNING").json()
    assert [w["instance_id"] for w in repeated["workflows"]] == ["waiting"]

    # Stored times are floats: filter on a time between two instances, not on one's own.
    e1, e2 = (state_of(client, i).created_at for i in ("e-1", "e-2"))
    assert e1 < e2
    middle = e1 + (e2 - e1) / 2
    newer = http.get("/api/v1/workflows", params={"created_from": middle.isoformat()}).json()
    assert [w["instance_id"] for w in newer["workflows"]] == ["waiting", "e-4", "e-3", "e-2"]
    zulu = middle.isoformat().replace("+00:00", "Z")
    older = http.get("/api/v1/workflows", params={"created_to": zulu, "name": "Echo"}).json()
    assert [w["instance_id"] for w in older["workflows"]] == ["e-1", "e-0"]
    naive = middle.replace(tzinfo=None).isoformat()
    assert len(http.get(f"/api/v1/workflows?created_from={naive}").json()["workflows"]) == 4


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "status=UNKNOWN",
        "limit=0",
        "limit=abc",
        "limit=100000",
        "created_from=yesterday",
        "created_to=2024-13-01",
        "page_token=garbage",
    ],
)
def test_list_rejects_bad_parameters_with_400(http: Http, query: str) -> None:
    message = error_of(http.get(f"/api/v1/workflows?{query}"), 400, "ERR_BAD_REQUEST")
    assert query.split("=")[0] in message or "cursor" in message


def test_state_and_history_json(
    workflows: wf.WorkflowRuntime, http: Http, client: wf.WorkflowClient
) -> None:
    http.post(f"{DAPR}/OrderProcessingWorkflow/start?instanceID=h-1", content=json.dumps(ORDER))
    wait_status(http, "h-1", "RUNNING")
    http.post(f"{DAPR}/h-1/raiseEvent/approve", content=b"true")
    wait_status(http, "h-1", "COMPLETED")

    state = http.get("/api/v1/workflows/h-1")
    assert state.status_code == 200
    assert state.json() == state_of(client, "h-1").to_json()
    assert state.json()["runtime_status"] == "COMPLETED"

    history = http.get("/api/v1/workflows/h-1/history")
    assert history.status_code == 200
    events = history.json()
    assert events == [event_to_dict(e) for e in client.get_workflow_history("h-1")]
    kinds = [e["kind"] for e in events if e["kind"] != "OrchestratorStarted"]
    assert kinds == [
        "ExecutionStarted",
        "EventRaised",
        "TaskScheduled",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert events[1]["input"] == json.dumps(ORDER)  # the body as sent


# ---- health and metrics ----------------------------------------------------------------------
class UnreachableStore(SqliteStore):
    """A SQLite store whose reads never answer."""

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        raise wf.StoreUnavailableError("database is unreachable (test)")

    def list_instances(self, query: InstanceQuery) -> InstancePage:
        raise wf.StoreUnavailableError("database is unreachable (test)")


def test_healthz(http: Http) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert http.get("/v1.0/healthz").status_code == 204


def test_unreachable_store_is_503_not_a_crash(
    serve: Callable[..., Http], client: wf.WorkflowClient
) -> None:
    store = UnreachableStore(client.store.url)
    try:
        http = serve(wf.WorkflowClient(store))
        health = http.get("/healthz", allow_5xx=True)
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert "unreachable" in health.json()["message"]
        error_of(http.get("/v1.0/healthz", allow_5xx=True), 500, "ERR_HEALTH_NOT_READY")
        error_of(http.get(f"{DAPR}/x", allow_5xx=True), 503, "ERR_GET_WORKFLOW")
        error_of(http.get("/api/v1/workflows", allow_5xx=True), 503, "ERR_LIST_WORKFLOWS")
        scrape = http.get("/metrics")
        assert scrape.status_code == 200
        assert "treadle_store_up 0.0" in scrape.text
    finally:
        store.close()


def test_metrics(workflows: wf.WorkflowRuntime, http: Http) -> None:
    http.post(f"{DAPR}/Waiter/start?instanceID=m-1")
    http.post(f"{DAPR}/Waiter/start?instanceID=m-2")
    wait_status(http, "m-1", "RUNNING")
    wait_status(http, "m-2", "RUNNING")
    http.post(f"{DAPR}/m-2/raiseEvent/go", content=b"1")
    wait_status(http, "m-2", "COMPLETED")
    http.get(f"{DAPR}/nope")

    scrape = http.get("/metrics")
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    text = scrape.text
    start = 'route="/v1.0/workflows/{component}/{name}/start",status="202"} 2.0'
    assert f'treadle_http_requests_total{{method="POST",{start}' in text
    missing = 'route="/v1.0/workflows/{component}/{instance_id}",status="404"} 1.0'
    assert f'treadle_http_requests_total{{method="GET",{missing}' in text
    assert "treadle_workflows_started_total 2.0" in text
    assert "treadle_workflow_events_raised_total 1.0" in text
    assert 'treadle_workflow_instances{status="RUNNING"} 1.0' in text
    assert 'treadle_workflow_instances{status="PENDING"} 0.0' in text
    assert "treadle_store_up 1.0" in text


def test_each_app_has_its_own_registry(
    workflows: wf.WorkflowRuntime, serve: Callable[..., Http], client: wf.WorkflowClient
) -> None:
    first = serve(client)
    second = serve(client)
    first.post(f"{DAPR}/Echo/start?instanceID=r-1")
    assert "treadle_workflows_started_total 1.0" in first.get("/metrics").text
    assert "treadle_workflows_started_total 0.0" in second.get("/metrics").text


def test_unknown_routes_count_as_unmatched(http: Http) -> None:
    http.get("/favicon.ico")
    assert 'route="unmatched",status="404"} 1.0' in http.get("/metrics").text


def test_importing_the_server_package_does_not_import_starlette() -> None:
    code = "import sys, treadle.server; assert 'starlette' not in sys.modules, 'starlette'"
    subprocess.run([sys.executable, "-c", code], check=True)
