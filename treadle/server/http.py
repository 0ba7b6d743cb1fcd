"""The HTTP API: Dapr's workflow HTTP API, a JSON API for the dashboard and CLI, health, metrics.

Build it with :func:`create_app` and serve it with any ASGI server. Routes (``{c}`` is the
workflow component: Dapr documents ``dapr``; any name is accepted and ignored)::

    Dapr workflow API, under /v1.0, /v1.0-beta1 and /v1.0-alpha1 (all three, as daprd):
    POST {v}/workflows/{c}/{name}/start[?instanceID=id]   202 {"instanceID": id}
    GET  {v}/workflows/{c}/{id}                           200 Dapr's status JSON
    POST {v}/workflows/{c}/{id}/terminate                 202 {}
    POST {v}/workflows/{c}/{id}/raiseEvent/{event}        202 {}
    POST {v}/workflows/{c}/{id}/pause                     202 {}
    POST {v}/workflows/{c}/{id}/resume                    202 {}
    POST {v}/workflows/{c}/{id}/purge                     202 {}  (Dapr has no DELETE route)
    JSON API:
    GET  /api/v1/workflows?status=&name=&created_from=&created_to=&limit=&page_token=
                                                          200 {"workflows", "next_page_token"}
    GET  /api/v1/workflows/{id}                           200 WorkflowState.to_json()
    GET  /api/v1/workflows/{id}/history                   200 [event_to_dict(...), ...]
    Schedules under /api/v1/schedules: see treadle.server.http_schedules.
    POST /api/v1/workflows/purge?status=&name=&older_than=7d&created_to=&dry_run=true
                                                          200 {"purged": n, "complete": bool}
    Operations:
    GET  /healthz                                         200 {"status": "ok"} / 503
    GET  /v1.0/healthz, /v1.0/healthz/outbound            204 / 500 (as daprd; SDKs probe it)
    GET  /metrics                                         200 Prometheus text
    GET  /openapi.json                                    200 this API as an OpenAPI 3 document
    Dashboard (HTML, for people; see treadle.server.dashboard):
    GET  /, /ui/...

Request bodies (a start's input, an event's data) must be JSON or empty; they are stored as the
text received, as daprd does. Errors are JSON ``{"errorCode": "ERR_...", "message": ...}`` with
Dapr's codes: 400 for bad input (malformed instance id, a workflow or event name that is not
printable or longer than 1024 characters, invalid JSON body), 404
``ERR_INSTANCE_ID_NOT_FOUND``, 409 when an unfinished instance has the id (start) or has not
finished (purge), 413 for a body over the limit, 401 without the API token, 503 when the store
is unreachable. A client that disconnects before sending its whole body is logged at INFO and
counted in ``/metrics`` with status 499, never as a 500. Where daprd answers 500
for a caller's mistake (already exists, purge of a running instance, unknown instance on raise
event, pause or resume) treadle answers the 4xx above, with daprd's error code.

With ``api_token`` set, every request must carry ``dapr-api-token: <token>``, including
``/metrics``; the health routes stay open, as in daprd, so probes need no secret.
"""

from __future__ import annotations

import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from treadle.client import (
    MAX_INSTANCE_ID_LENGTH,
    WorkflowClient,
    WorkflowState,
    WorkflowStatus,
    check_json,
    validate_instance_id,
)
from treadle.core import codec
from treadle.core.history import TraceContext, event_to_dict, valid_traceparent
from treadle.core.validation import parse_duration
from treadle.errors import (
    InvalidInputError,
    ScheduleAlreadyExistsError,
    ScheduleNotFoundError,
    StoreUnavailableError,
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.server.dashboard import create_dashboard, is_dashboard_path
from treadle.server.dashboard.pages import WorkflowLookup
from treadle.server.http_schedules import ScheduleHandlers
from treadle.server.metrics import CONTENT_TYPE, ServerMetrics
from treadle.server.openapi import openapi_document

__all__ = ["DAPR_API_PREFIXES", "create_app", "dapr_workflow_json"]

logger = logging.getLogger(__name__)

DAPR_API_PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")
TOKEN_HEADER = "dapr-api-token"
DEFAULT_PAGE_SIZE = 100
CLIENT_CLOSED_REQUEST = 499
"""The status counted in ``/metrics`` for a request whose client disconnected before sending
all of it (nginx's code; the client never sees it)."""
MAX_PAGE_SIZE = 1000
_OPEN_PATHS = frozenset({"/healthz", "/v1.0/healthz", "/v1.0/healthz/outbound"})
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    client: WorkflowClient,
    *,
    api_token: str | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    metrics: ServerMetrics | None = None,
    dashboard: bool = True,
    lookup: WorkflowLookup | None = None,
) -> Starlette:
    """Build the ASGI app serving the Dapr workflow HTTP API and treadle's JSON API.

    Args:
        client: the client whose operations (:attr:`WorkflowClient.operations`) every route
            goes through (in a thread pool).
        api_token: require ``dapr-api-token: <token>`` on every route but health (none if
            None or empty, as daprd).
        max_body_bytes: larger request bodies get 413.
        metrics: where to count; default a fresh :class:`ServerMetrics` that also counts the
            client's unfinished instances on scrape.
        dashboard: serve the web dashboard at ``/`` and under ``/ui/``
            (:mod:`treadle.server.dashboard`; it asks for ``api_token`` itself, once).
        lookup: the workflow code registered under a name, for the dashboard (see
            :func:`~treadle.server.dashboard.create_dashboard`).

    Returns:
        the Starlette app; ``app.state.client`` and ``app.state.metrics`` hold its parts.

    Raises:
        ValueError: ``max_body_bytes`` is negative.
    """
    if max_body_bytes < 0:
        raise ValueError("max_body_bytes must be >= 0")
    metrics = metrics if metrics is not None else ServerMetrics(client)
    api = _Handlers(client, metrics, max_body_bytes, requires_token=bool(api_token))
    middleware = [Middleware(_MetricsMiddleware, metrics=metrics)]
    if api_token:
        middleware.append(Middleware(_TokenMiddleware, token=api_token))
    if dashboard:
        ui = create_dashboard(client, api_token=api_token, lookup=lookup)
        middleware.append(Middleware(_DashboardRouter, dashboard=ui))
    app = Starlette(
        routes=_routes(api),
        middleware=middleware,
        exception_handlers={HTTPException: _http_exception},
    )
    app.state.client = client
    app.state.metrics = metrics
    return app


def dapr_workflow_json(state: WorkflowState) -> dict[str, Any]:
    """An instance's state as daprd's ``GET /v1.0/workflows/dapr/{id}`` reports it.

    Payloads are the stored JSON text, as in Dapr. A failed instance reports the
    ``dapr.workflow.failure.*`` properties and no ``dapr.workflow.output``.
    """
    properties: dict[str, str] = {}
    if state.serialized_custom_status is not None:
        properties["dapr.workflow.custom_status"] = state.serialized_custom_status
    if state.serialized_input is not None:
        properties["dapr.workflow.input"] = state.serialized_input
    failure = state.failure_details
    if state.serialized_output is not None and failure is None:
        properties["dapr.workflow.output"] = state.serialized_output
    if failure is not None:
        properties["dapr.workflow.failure.error_type"] = failure.error_type
        properties["dapr.workflow.failure.error_message"] = failure.message
        if failure.stack_trace is not None:
            properties["dapr.workflow.failure.stack_trace"] = failure.stack_trace
    return {
        "instanceID": state.instance_id,
        "workflowName": state.name,
        "createdAt": _rfc3339(state.created_at),
        "lastUpdatedAt": _rfc3339(state.last_updated_at),
        "runtimeStatus": state.runtime_status.name,
        "properties": properties,
    }


# ---- routes --------------------------------------------------------------------------------
def _routes(api: _Handlers) -> list[Route]:
    # (method, path under {prefix}/workflows/{component}, handler, daprd's error code)
    dapr: list[tuple[str, str, Handler, str]] = [
        ("POST", "/{name}/start", api.start, "ERR_START_WORKFLOW"),
        ("GET", "/{instance_id}", api.get, "ERR_GET_WORKFLOW"),
        ("POST", "/{instance_id}/terminate", api.terminate, "ERR_TERMINATE_WORKFLOW"),
        (
            "POST",
            "/{instance_id}/raiseEvent/{event_name}",
            api.raise_event,
            "ERR_RAISE_EVENT_WORKFLOW",
        ),
        ("POST", "/{instance_id}/pause", api.pause, "ERR_PAUSE_WORKFLOW"),
        ("POST", "/{instance_id}/resume", api.resume, "ERR_RESUME_WORKFLOW"),
        ("POST", "/{instance_id}/purge", api.purge, "ERR_PURGE_WORKFLOW"),
    ]
    routes = [
        Route(f"{prefix}/workflows/{{component}}{path}", _guard(handler, code), methods=[method])
        for prefix in DAPR_API_PREFIXES
        for method, path, handler, code in dapr
    ]
    api_v1: list[tuple[str, Handler, str]] = [
        ("/api/v1/workflows", api.list_workflows, "ERR_LIST_WORKFLOWS"),
        ("/api/v1/workflows/{instance_id}", api.get_state, "ERR_GET_WORKFLOW"),
        ("/api/v1/workflows/{instance_id}/history", api.history, "ERR_GET_WORKFLOW_HISTORY"),
        ("/metrics", api.metrics_text, "ERR_METRICS"),
        ("/openapi.json", api.openapi_json, "ERR_OPENAPI"),
    ]
    routes += [
        Route(path, _guard(handler, code), methods=["GET"]) for path, handler, code in api_v1
    ]
    routes += [
        Route(path, _guard(handler, code), methods=[method])
        for method, path, handler, code in ScheduleHandlers(api.client).routes()
    ]
    routes.insert(
        0,
        Route(
            "/api/v1/workflows/purge",
            _guard(api.purge_matching, "ERR_PURGE_WORKFLOW"),
            methods=["POST"],
        ),
    )
    routes += [
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/v1.0/healthz", api.dapr_healthz, methods=["GET"]),
        Route("/v1.0/healthz/outbound", api.dapr_healthz, methods=["GET"]),
    ]
    return routes


class _ApiError(Exception):
    """A request that gets an error response (status, Dapr-style code and message)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _guard(handler: Handler, op_code: str) -> Handler:
    """Map exceptions to JSON error responses; ``op_code`` is daprd's code for the operation."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except _ApiError as exc:
            return _error(exc.status, exc.code, exc.message)
        except WorkflowNotFoundError as exc:
            return _error(404, "ERR_INSTANCE_ID_NOT_FOUND", str(exc))
        except (WorkflowAlreadyExistsError, WorkflowStateError) as exc:
            return _error(409, op_code, str(exc))
        except InvalidInputError as exc:
            return _error(400, "ERR_BAD_REQUEST", str(exc))
        except ScheduleNotFoundError as exc:
            return _error(404, "ERR_SCHEDULE_NOT_FOUND", str(exc))
        except ScheduleAlreadyExistsError as exc:
            return _error(409, op_code, str(exc))
        except StoreUnavailableError as exc:
            return _error(503, op_code, f"the workflow store is unavailable: {exc}")
        except ClientDisconnect:
            # The caller went away before sending its whole request: nothing to answer, and
            # nothing went wrong here (a stalled one is cut off by the server's read timeout).
            logger.info(
                "%s %s: the client disconnected before sending the whole request",
                request.method,
                request.url.path,
            )
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except Exception as exc:
            logger.exception("%s %s failed", request.method, request.url.path)
            return _error(500, op_code, f"internal error: {type(exc).__name__}: {exc}")

    return endpoint


class _Handlers:
    """The endpoints; every operation runs in the thread pool (the store blocks).

    They go through the client's :class:`~treadle.client.InstanceOperations`, passing
    payloads on as the JSON text received; that layer checks ids, names and payloads.
    """

    def __init__(
        self, client: WorkflowClient, metrics: ServerMetrics, max_body: int, *, requires_token: bool
    ) -> None:
        self.ops = client.operations
        self.client = client
        self.metrics = metrics
        self.max_body = max_body
        self.requires_token = requires_token
        self.openapi: bytes | None = None

    # ---- Dapr workflow API ---------------------------------------------------------------
    async def start(self, request: Request) -> Response:
        name = request.path_params["name"]
        query = request.query_params
        instance_id = query.get("instanceID") or query.get("instanceId") or None
        if instance_id is not None:
            _check_new_instance_id(instance_id)
        text = _json_text(await self._read_body(request))
        trace = _trace_context(request)  # (W3C headers, as daprd reads them)
        iid = await run_in_threadpool(
            functools.partial(
                self.ops.create, name, input=text, instance_id=instance_id, trace=trace
            )
        )
        self.metrics.workflows_started.inc()
        return _json(202, {"instanceID": iid})

    async def get(self, request: Request) -> Response:
        state = await self._state(request)
        return _json(200, dapr_workflow_json(state))

    async def terminate(self, request: Request) -> Response:
        await run_in_threadpool(self.ops.terminate, _instance_id(request))
        return _json(202, {})

    async def raise_event(self, request: Request) -> Response:
        iid = _instance_id(request)
        event = request.path_params["event_name"]
        data = _json_text(await self._read_body(request))
        await run_in_threadpool(functools.partial(self.ops.raise_event, iid, event, data=data))
        self.metrics.events_raised.inc()
        return _json(202, {})

    async def pause(self, request: Request) -> Response:
        await run_in_threadpool(self.ops.suspend, _instance_id(request))
        return _json(202, {})

    async def resume(self, request: Request) -> Response:
        await run_in_threadpool(self.ops.resume, _instance_id(request))
        return _json(202, {})

    async def purge(self, request: Request) -> Response:
        iid = _instance_id(request)
        if await run_in_threadpool(self.ops.purge, iid) == 0:
            raise _not_found(iid)
        return _json(202, {})

    # ---- JSON API ------------------------------------------------------------------------
    async def purge_matching(self, request: Request) -> Response:
        query = request.query_params
        statuses = _parse_statuses(query.getlist("status"))
        older_than = query.get("older_than")
        dry_run = query.get("dry_run", "false").lower()
        if dry_run not in ("true", "false", "1", "0"):
            raise _ApiError(400, "ERR_BAD_REQUEST", f"dry_run={dry_run!r}: use true or false")
        outcome = await run_in_threadpool(
            functools.partial(
                self.ops.purge_matching,
                statuses=[s.to_orchestration_status() for s in statuses],
                name=query.get("name") or None,
                created_from=_parse_time(query.get("created_from"), "created_from"),
                created_to=_parse_time(query.get("created_to"), "created_to"),
                finished_before=datetime.now(timezone.utc)
                - parse_duration(older_than, "older_than")
                if older_than
                else None,
                dry_run=dry_run in ("true", "1"),
            )
        )
        return _json(200, {"purged": outcome.deleted, "complete": outcome.complete})

    async def list_workflows(self, request: Request) -> Response:
        query = request.query_params
        statuses = _parse_statuses(query.getlist("status"))
        page = await run_in_threadpool(
            functools.partial(
                self.ops.list_instances,
                statuses=[s.to_orchestration_status() for s in statuses],
                name=query.get("name") or None,
                created_from=_parse_time(query.get("created_from"), "created_from"),
                created_to=_parse_time(query.get("created_to"), "created_to"),
                page_size=_parse_limit(query.get("limit")),
                continuation_token=query.get("page_token") or None,
            )
        )
        return _json(
            200,
            {
                "workflows": [WorkflowState.from_record(r).to_json() for r in page.instances],
                "next_page_token": page.next_cursor,
            },
        )

    async def get_state(self, request: Request) -> Response:
        return _json(200, (await self._state(request)).to_json())

    async def history(self, request: Request) -> Response:
        events = await run_in_threadpool(self.ops.get_history, _instance_id(request))
        return _json(200, [event_to_dict(event) for event in events])

    # ---- operations ----------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        problem = await self._store_problem()
        if problem is None:
            return _json(200, {"status": "ok"})
        return _json(503, {"status": "unavailable", "message": problem})

    async def dapr_healthz(self, request: Request) -> Response:
        problem = await self._store_problem()
        if problem is None:
            return Response(status_code=204)
        return _error(500, "ERR_HEALTH_NOT_READY", f"treadle is not ready: {problem}")

    async def metrics_text(self, request: Request) -> Response:
        body = await run_in_threadpool(self.metrics.render)
        return Response(body, media_type=CONTENT_TYPE)

    async def openapi_json(self, request: Request) -> Response:
        if self.openapi is None:  # (built from the routes of the app serving it)
            document = openapi_document(
                request.app.routes, requires_token=self.requires_token, open_paths=_OPEN_PATHS
            )
            self.openapi = codec.dumps(document).encode()
        return Response(self.openapi, media_type="application/json")

    # ---- helpers -------------------------------------------------------------------------
    async def _state(self, request: Request) -> WorkflowState:
        iid = _instance_id(request)
        record = await run_in_threadpool(self.ops.get, iid)
        if record is None:
            raise _not_found(iid)
        return WorkflowState.from_record(record)

    async def _store_problem(self) -> str | None:
        """None when the store answers a lookup, else what went wrong."""
        try:
            await run_in_threadpool(self.ops.get, "treadle-healthz")
        except Exception as exc:
            logger.warning("health check: the store did not answer", exc_info=True)
            return f"the workflow store did not answer: {type(exc).__name__}: {exc}"
        return None

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to exceed the limit."""
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise _ApiError(
                    400, "ERR_BODY_READ", f"Content-Length {declared!r} is not a number"
                ) from None
            if size > self.max_body:
                raise self._too_large(size)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise self._too_large(None)
        return bytes(body)

    def _too_large(self, size: int | None) -> _ApiError:
        what = f"is {size} bytes" if size is not None else "is longer than that"
        return _ApiError(
            413,
            "ERR_BODY_READ",
            f"the request body may be at most {self.max_body} bytes and this one {what}; "
            "send a smaller payload or raise the server's max body size",
        )


# ---- middleware ----------------------------------------------------------------------------
class _MetricsMiddleware:
    """Counts requests by route template (``scope["route"]``, set by the router), method and
    status; unrouted requests (404, 401) count under ``unmatched``."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        began = time.perf_counter()

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.request(route, method, status, time.perf_counter() - began)


class _TokenMiddleware:
    """Refuses requests without the right ``dapr-api-token`` header (health stays open)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not (scope["path"] in _OPEN_PATHS and scope["method"] in ("GET", "HEAD"))
            and not is_dashboard_path(scope["path"])  # it asks for the token itself
        ):
            # Header values arrive as latin-1 text; compare the raw bytes in constant time.
            sent = Headers(scope=scope).get(TOKEN_HEADER)
            if sent is None or not hmac.compare_digest(sent.encode("latin-1"), self.token):
                response = _error(
                    401,
                    "ERR_UNAUTHORIZED",
                    f"invalid api token: send the header '{TOKEN_HEADER}: <token>' "
                    "with the token the server was started with",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _DashboardRouter:
    """Sends the dashboard's paths (``/`` and ``/ui/...``) to the dashboard app."""

    def __init__(self, app: ASGIApp, dashboard: ASGIApp) -> None:
        self.app = app
        self.dashboard = dashboard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_dashboard_path(scope["path"]):
            await self.dashboard(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown routes and wrong methods, as JSON errors."""
    assert isinstance(exc, HTTPException)
    code = {404: "ERR_NOT_FOUND", 405: "ERR_METHOD_NOT_ALLOWED"}.get(exc.status_code, "ERROR")
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return _error(exc.status_code, code, message, headers=exc.headers)


# ---- parsing and encoding ------------------------------------------------------------------
def _instance_id(request: Request) -> str:
    try:
        return validate_instance_id(request.path_params["instance_id"])
    except InvalidInputError as exc:
        raise _ApiError(400, "ERR_INSTANCE_ID_INVALID", str(exc)) from None


def _check_new_instance_id(instance_id: str) -> None:
    """Dapr's rule for new ids (letters, digits, ``-``, ``_``) with treadle's length limit
    (256; daprd allows 64), so that every new id can be addressed in a URL path."""
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise _ApiError(
            400,
            "ERR_INSTANCE_ID_TOO_LONG",
            f"workflow instance ID is {len(instance_id)} characters long; "
            f"the limit is {MAX_INSTANCE_ID_LENGTH}",
        )
    if not all(c.isalnum() or c in "-_" for c in instance_id):
        raise _ApiError(
            400,
            "ERR_INSTANCE_ID_INVALID",
            f"workflow instance ID {instance_id!r} is invalid: only letters, digits, "
            "dashes and underscores are allowed",
        )


def _not_found(instance_id: str) -> _ApiError:
    return _ApiError(
        404,
        "ERR_INSTANCE_ID_NOT_FOUND",
        f"unable to find workflow with the provided instance ID: {instance_id}",
    )


def _trace_context(request: Request) -> TraceContext | None:
    """The trace context of a request's W3C ``traceparent`` (and ``tracestate``) headers, if
    it has a valid one."""
    parent = request.headers.get("traceparent", "")
    if not valid_traceparent(parent):
        return None
    return TraceContext(parent, "", request.headers.get("tracestate") or None)


def _json_text(body: bytes) -> str | None:
    """The body as the JSON text received (None when empty), checked to be JSON."""
    try:
        return check_json(body.decode(), "the request body")
    except (UnicodeDecodeError, InvalidInputError) as exc:
        raise _ApiError(
            400, "ERR_MALFORMED_REQUEST", f"the request body must be JSON (or empty): {exc}"
        ) from None


def _parse_statuses(values: list[str]) -> list[WorkflowStatus]:
    statuses: list[WorkflowStatus] = []
    for value in values:
        for name in filter(None, (part.strip().upper() for part in value.split(","))):
            status = WorkflowStatus.__members__.get(name)
            if status is None or status is WorkflowStatus.UNKNOWN:
                valid = ", ".join(s.name for s in WorkflowStatus if s is not WorkflowStatus.UNKNOWN)
                raise _ApiError(
                    400, "ERR_BAD_REQUEST", f"unknown status {name!r} in 'status'; use {valid}"
                )
            statuses.append(status)
    return statuses


def _parse_time(value: str | None, param: str) -> datetime | None:
    """An ISO 8601 time; a trailing ``Z`` is allowed and a naive time is taken as UTC."""
    if not value:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _ApiError(
            400,
            "ERR_BAD_REQUEST",
            f"{param}={value!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)",
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _parse_limit(value: str | None) -> int:
    if not value:
        return DEFAULT_PAGE_SIZE
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise _ApiError(
            400, "ERR_BAD_REQUEST", f"limit={value!r}: use a whole number from 1 to {MAX_PAGE_SIZE}"
        )
    return limit


def _rfc3339(moment: datetime) -> str:
    """UTC with a ``Z``, and 0, 3 or 6 fraction digits: how protojson writes a Timestamp."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    micros = moment.microsecond
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z" if micros else f"{text}Z"
    return f"{text}.{micros:06d}Z"


def _json(status: int, body: Any) -> Response:
    return Response(codec.dumps(body), status_code=status, media_type="application/json")


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        codec.dumps({"errorCode": code, "message": message}),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )
