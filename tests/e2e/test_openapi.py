"""``GET /openapi.json``: a valid OpenAPI 3 document with every route of the HTTP API in it,
whose declared responses are the ones the server gives."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

import treadle as wf
from treadle.server.http import create_app
from treadle.store.sqlite import SqliteStore

from .sidecar_inprocess import InProcessSidecar, in_process_sidecar

TOKEN = "s3cret"


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[InProcessSidecar]:
    with in_process_sidecar(f"sqlite:///{tmp_path / 'openapi.db'}") as served:
        yield served


def _document(sidecar: InProcessSidecar) -> dict[str, Any]:
    response = sidecar.http("GET", "/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def test_the_document_is_valid_openapi_3_and_lists_every_route(sidecar: InProcessSidecar) -> None:
    document = _document(sidecar)
    validate(document)  # raises on an invalid document
    assert document["openapi"].startswith("3.")
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    routes = [r for r in sidecar.app.routes if isinstance(r, Route)]
    served = {(r.path, m.lower()) for r in routes for m in (r.methods or ()) if m != "HEAD"}
    assert served and served == listed
    for path in (
        "/openapi.json",
        "/api/v1/workflows",
        "/v1.0-alpha1/workflows/{component}/{name}/start",
    ):
        assert path in document["paths"]
    listing = document["paths"]["/api/v1/workflows"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"status", "name", "limit", "page_token"}
    operation_ids = [
        op["operationId"] for item in document["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_operation_answers_with_a_response_it_declares(sidecar: InProcessSidecar) -> None:
    sidecar.client.schedule_new_workflow("unregistered", instance_id="abc")
    sidecar.client.operations.control_wait_s = 0  # (nobody runs it: do not wait for a worker)
    document = _document(sidecar)
    values = {
        "component": "dapr",
        "instance_id": "abc",
        "name": "wf",
        "event_name": "ev",
        "schedule_id": "abc",
    }
    for path, item in document["paths"].items():
        url = re.sub(r"{(\w+)}", lambda m: values[m.group(1)], path)
        for method, operation in item.items():
            response = sidecar.http(method.upper(), url)
            assert str(response.status_code) in operation["responses"], (
                method,
                path,
                response.status_code,
                response.text[:200],
            )
            assert response.status_code < 500, (method, path, response.text)


def _get(app: Any, url: str, headers: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await http.get(url, headers=headers)

    return anyio.run(call)


def test_with_a_token_every_route_but_health_declares_it(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'token.db'}")
    try:
        with wf.WorkflowClient(store) as client:
            app = create_app(client, api_token=TOKEN)
            assert _get(app, "/openapi.json", {}).status_code == 401
            document = _get(app, "/openapi.json", {"dapr-api-token": TOKEN}).json()
    finally:
        store.close()
    validate(document)
    for path, item in document["paths"].items():
        for operation in item.values():
            is_health = "healthz" in path
            assert (operation["security"] == []) is is_health, path
            assert ("401" in operation["responses"]) is not is_health, path
