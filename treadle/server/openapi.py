"""The OpenAPI 3 document of the HTTP API, served at ``GET /openapi.json``.

It is built from the app's own route table, so no route can be missing from it: every route
gets an operation, and the routes of :mod:`treadle.server.http` get their parameters, bodies
and responses from :data:`OPERATIONS` (keyed by the endpoint's name); a route added without an
entry there still appears, with its path parameters and a plain 200. Tools read it to call or
fuzz the API (``schemathesis``, client generators).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Route

from treadle.core.validation import MAX_INSTANCE_ID_LENGTH, MAX_NAME_LENGTH, MAX_TOKEN_LENGTH

__all__ = ["OPENAPI_VERSION", "OPERATIONS", "Operation", "openapi_document"]

OPENAPI_VERSION = "3.0.3"
"""The OpenAPI version of the document (3.0, which every tool reads)."""

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_STRING: dict[str, Any] = {"type": "string"}
_ANY_JSON: dict[str, Any] = {"description": "Any JSON value; stored as the text sent."}


@dataclass(frozen=True)
class Operation:
    """What the document says of one endpoint.

    Attributes:
        summary: one line.
        query: query parameters (OpenAPI parameter objects, ``in: query`` added).
        body: it takes a JSON request body (optional; empty means none).
        ok: the success status and its response object.
        errors: the error statuses it may answer, besides 401 (with a token) and 503.
        store: it reads or writes the store (so it may answer 503).
        path_params: schemas of path parameters other than ``instance_id`` (which has its
            own) and the default (any string).
    """

    summary: str
    query: tuple[dict[str, Any], ...] = ()
    body: bool = False
    ok: tuple[str, dict[str, Any]] = ("200", {"description": "OK"})
    errors: tuple[str, ...] = ()
    store: bool = True
    path_params: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


_ACCEPTED = ("202", _json("Accepted", {"type": "object"}))
_INSTANCE = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_INSTANCE_ID_LENGTH,
    "description": "An instance id: printable characters, no control characters.",
}
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_LENGTH,
    "description": "Printable characters, no control characters.",
}
_STATUSES = ["RUNNING", "COMPLETED", "FAILED", "TERMINATED", "PENDING", "SUSPENDED", "STALLED"]

OPERATIONS: dict[str, Operation] = {
    "start": Operation(
        "Start a workflow instance (Dapr's start API).",
        query=(
            {
                "name": "instanceID",
                "schema": {
                    "type": "string",
                    "maxLength": MAX_INSTANCE_ID_LENGTH,
                    "description": "Letters, digits, '-' and '_' (default: a new id).",
                },
            },
            {"name": "instanceId", "schema": _STRING, "description": "Alias of instanceID."},
        ),
        body=True,
        ok=("202", _json("Started", _ref("Started"))),
        errors=("400", "409", "413"),
        path_params={"name": _NAME},
    ),
    "get": Operation(
        "An instance's state, as daprd reports it.",
        ok=("200", _json("The state", _ref("DaprWorkflow"))),
        errors=("400", "404"),
    ),
    "terminate": Operation("Terminate an instance.", ok=_ACCEPTED, errors=("400", "404")),
    "raise_event": Operation(
        "Raise an event on an instance.",
        body=True,
        ok=_ACCEPTED,
        errors=("400", "404", "413"),
        path_params={"event_name": _NAME},
    ),
    "pause": Operation("Suspend an instance.", ok=_ACCEPTED, errors=("400", "404")),
    "resume": Operation("Resume a suspended instance.", ok=_ACCEPTED, errors=("400", "404")),
    "purge": Operation(
        "Delete a finished instance's state.", ok=_ACCEPTED, errors=("400", "404", "409")
    ),
    "purge_matching": Operation(
        "Delete the finished instances matching the filters, in short batches.",
        query=(
            {
                "name": "status",
                "schema": {"type": "array", "items": {"type": "string", "enum": _STATUSES}},
                "style": "form",
                "explode": True,
                "description": "Only these statuses (finished ones are purged).",
            },
            {"name": "name", "schema": _NAME, "description": "Only this workflow."},
            {"name": "created_from", "schema": {"type": "string", "format": "date-time"}},
            {"name": "created_to", "schema": {"type": "string", "format": "date-time"}},
            {
                "name": "older_than",
                "schema": _STRING,
                "description": "Finished at least this long ago (7d, 12h, 30m, 90s).",
            },
            {"name": "dry_run", "schema": {"type": "boolean"}, "description": "Count only."},
        ),
        ok=("200", _json("What was purged", _ref("Purged"))),
        errors=("400",),
    ),
    "create_schedule": Operation(
        "Create a durable schedule (a JSON body: schedule_id, workflow, cron or every, ...).",
        body=True,
        ok=("201", _json("The schedule", _ref("Schedule"))),
        errors=("400", "409"),
    ),
    "list_schedules": Operation(
        "Every schedule.",
        ok=("200", _json("The schedules", {"type": "array", "items": _ref("Schedule")})),
    ),
    "get_schedule": Operation(
        "A schedule with its latest runs.",
        ok=("200", _json("The schedule", _ref("Schedule"))),
        errors=("400", "404"),
    ),
    "pause_schedule": Operation(
        "Pause a schedule.", ok=("200", _json("Paused", {"type": "object"})), errors=("400", "404")
    ),
    "resume_schedule": Operation(
        "Resume a schedule from its next slot.",
        ok=("200", _json("Resumed", {"type": "object"})),
        errors=("400", "404"),
    ),
    "trigger_schedule": Operation(
        "Start the schedule's workflow now.",
        ok=("202", _json("Started", _ref("Started"))),
        errors=("400", "404"),
    ),
    "delete_schedule": Operation(
        "Delete a schedule (its instances stay).",
        ok=("200", _json("Deleted", {"type": "object"})),
        errors=("400", "404"),
    ),
    "list_workflows": Operation(
        "A page of instances, newest first.",
        query=(
            {
                "name": "status",
                "schema": {"type": "array", "items": {"type": "string", "enum": _STATUSES}},
                "style": "form",
                "explode": True,
                "description": "Only these statuses (repeat it, or separate with commas).",
            },
            {"name": "name", "schema": _NAME, "description": "Only this workflow."},
            {"name": "created_from", "schema": {"type": "string", "format": "date-time"}},
            {"name": "created_to", "schema": {"type": "string", "format": "date-time"}},
            {"name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            {
                "name": "page_token",
                "schema": {"type": "string", "maxLength": MAX_TOKEN_LENGTH},
                "description": "The next_page_token of the previous page.",
            },
        ),
        ok=("200", _json("A page", _ref("WorkflowPage"))),
        errors=("400",),
    ),
    "get_state": Operation(
        "An instance's state.",
        ok=("200", _json("The state", _ref("WorkflowState"))),
        errors=("400", "404"),
    ),
    "history": Operation(
        "The current run's history events, oldest first.",
        ok=("200", _json("The events", {"type": "array", "items": _ref("HistoryEvent")})),
        errors=("400", "404"),
    ),
    "metrics_text": Operation(
        "Prometheus metrics.",
        ok=("200", {"description": "Metrics", "content": {"text/plain": {"schema": _STRING}}}),
    ),
    "openapi_json": Operation(
        "This document.", ok=("200", _json("The OpenAPI document", {"type": "object"})), store=False
    ),
    "healthz": Operation(
        "Health: whether the store answers (open without the token).",
        ok=("200", _json("Healthy", _ref("Health"))),
        errors=("503",),
    ),
    "dapr_healthz": Operation(
        "Health as daprd reports it (open without the token).",
        ok=("204", {"description": "Healthy"}),
        errors=("500",),
    ),
}
"""The endpoints of :mod:`treadle.server.http`, by function name."""

_ERRORS = {
    "400": "Bad input: an id, name, filter, token or body that breaks the rules",
    "401": "Missing or wrong dapr-api-token header",
    "404": "No such instance (or schedule)",
    "409": "The instance's state does not allow it (or the schedule id is taken)",
    "413": "Body over the limit",
    "500": "Not ready (daprd's health answer)",
    "503": "The store is unavailable",
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["errorCode", "message"],
        "properties": {"errorCode": _STRING, "message": _STRING},
    },
    "Started": {
        "type": "object",
        "required": ["instanceID"],
        "properties": {"instanceID": _STRING},
    },
    "DaprWorkflow": {
        "type": "object",
        "required": [
            "instanceID",
            "workflowName",
            "createdAt",
            "lastUpdatedAt",
            "runtimeStatus",
            "properties",
        ],
        "properties": {
            "instanceID": _STRING,
            "workflowName": _STRING,
            "createdAt": {"type": "string", "format": "date-time"},
            "lastUpdatedAt": {"type": "string", "format": "date-time"},
            "runtimeStatus": _STRING,
            "properties": {"type": "object", "additionalProperties": _STRING},
        },
    },
    "Failure": {
        "type": "object",
        "nullable": True,
        "properties": {
            "error_type": _STRING,
            "message": _STRING,
            "stack_trace": {"type": "string", "nullable": True},
        },
    },
    "WorkflowState": {
        "type": "object",
        "required": ["instance_id", "name", "runtime_status", "created_at", "last_updated_at"],
        "properties": {
            "instance_id": _STRING,
            "name": _STRING,
            "runtime_status": _STRING,
            "created_at": {"type": "string", "format": "date-time"},
            "last_updated_at": {"type": "string", "format": "date-time"},
            "serialized_input": {"type": "string", "nullable": True},
            "serialized_output": {"type": "string", "nullable": True},
            "serialized_custom_status": {"type": "string", "nullable": True},
            "waiting_reason": {"type": "string", "nullable": True},
            "failure_details": _ref("Failure"),
        },
    },
    "WorkflowPage": {
        "type": "object",
        "required": ["workflows", "next_page_token"],
        "properties": {
            "workflows": {"type": "array", "items": _ref("WorkflowState")},
            "next_page_token": {"type": "string", "nullable": True},
        },
    },
    "HistoryEvent": {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": _STRING},
        "additionalProperties": True,
    },
    "Purged": {
        "type": "object",
        "required": ["purged", "complete"],
        "properties": {"purged": {"type": "integer"}, "complete": {"type": "boolean"}},
    },
    "Schedule": {
        "type": "object",
        "required": ["schedule_id", "workflow", "spec", "paused", "next_slot", "recent_runs"],
        "properties": {
            "schedule_id": _STRING,
            "workflow": _STRING,
            "spec": {"type": "object", "additionalProperties": True},
            "input": {"type": "string", "nullable": True},
            "paused": {"type": "boolean"},
            "next_slot": {"type": "string", "format": "date-time", "nullable": True},
            "created_at": {"type": "string", "format": "date-time"},
            "recent_runs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "slot": {"type": "string", "format": "date-time"},
                        "instance_id": {"type": "string", "nullable": True},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": _STRING, "message": _STRING},
    },
}


def openapi_document(
    routes: Iterable[BaseRoute], *, requires_token: bool, open_paths: Iterable[str] = ()
) -> dict[str, Any]:
    """The OpenAPI document of an app's routes.

    Args:
        routes: the app's routes (``app.routes``); those that are not plain HTTP routes
            (mounts, websockets) are left out.
        requires_token: every path but ``open_paths`` needs the ``dapr-api-token`` header.
        open_paths: the paths open without the token.

    Returns:
        the document, ready to serve as JSON.
    """
    open_set = frozenset(open_paths)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        if not isinstance(route, Route) or not route.methods:
            continue
        name = getattr(route.endpoint, "__name__", route.name)
        spec = OPERATIONS.get(name) or Operation(_first_line(route.endpoint.__doc__) or name)
        item = paths.setdefault(route.path, {})
        for method in sorted(route.methods - {"HEAD"}):  # (Starlette adds HEAD to every GET)
            op = _operation(route.path, method, name, spec, requires_token, route.path in open_set)
            item[method.lower()] = op
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "treadle serve",
            "version": "1",
            "description": (
                "The Dapr workflow HTTP API (under /v1.0, /v1.0-beta1 and /v1.0-alpha1) and "
                "treadle's JSON API, health and metrics. Errors are JSON "
                '{"errorCode", "message"}.'
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "daprApiToken": {"type": "apiKey", "in": "header", "name": "dapr-api-token"}
            },
        },
    }
    return document


def _operation(
    path: str, method: str, name: str, spec: Operation, requires_token: bool, is_open: bool
) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for param in _PATH_PARAM.findall(path):
        schema = spec.path_params.get(param) or (_INSTANCE if param == "instance_id" else _STRING)
        parameters.append({"name": param, "in": "path", "required": True, "schema": schema})
    parameters += [{**q, "in": "query"} for q in spec.query]
    status, ok = spec.ok
    responses: dict[str, Any] = {status: ok}
    errors = list(spec.errors)
    if spec.store and "503" not in errors and name not in ("dapr_healthz",):
        errors.append("503")
    if requires_token and not is_open:
        errors.append("401")
    for code in sorted(errors):
        responses[code] = _json(_ERRORS.get(code, "Error"), _ref("Error"))
    if name == "healthz":  # its 503 is a Health body, not an error
        responses["503"] = _json("The store does not answer", _ref("Health"))
    operation: dict[str, Any] = {
        "operationId": _operation_id(method, path),
        "summary": spec.summary,
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if spec.body:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ANY_JSON}},
        }
    operation["security"] = [{"daprApiToken": []}] if requires_token and not is_open else []
    return operation


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_")
    return f"{method.lower()}_{words or 'root'}"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""
