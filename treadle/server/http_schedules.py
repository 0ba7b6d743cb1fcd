"""The HTTP API's schedule routes (mounted by :func:`treadle.server.http.create_app`)::

    POST   /api/v1/schedules                    201 the schedule   (body below)
    GET    /api/v1/schedules                    200 [schedule, ...]
    GET    /api/v1/schedules/{id}               200 the schedule (with its latest runs) / 404
    POST   /api/v1/schedules/{id}/pause         200 {}
    POST   /api/v1/schedules/{id}/resume        200 {}
    POST   /api/v1/schedules/{id}/trigger       202 {"instanceID": id}
    DELETE /api/v1/schedules/{id}               200 {}

The body of a create is a JSON object: ``schedule_id``, ``workflow``, and ``cron`` (with
``time_zone``) or ``every`` (``"5m"``, or seconds as a number); optional ``input`` (any JSON
value), ``start_at``, ``end_at`` (ISO 8601), ``overlap`` (``skip``, ``buffer_one``,
``allow``), ``catchup_window`` (like ``every``), ``replace``. Errors are the API's JSON errors:
400 for a bad body, 404 for an unknown schedule, 409 for an id in use.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from treadle.client import WorkflowClient
from treadle.core import codec
from treadle.core.validation import parse_duration
from treadle.errors import InvalidInputError, ScheduleNotFoundError

__all__ = ["ScheduleHandlers"]

_FIELDS = frozenset(
    {
        "schedule_id",
        "workflow",
        "cron",
        "every",
        "input",
        "time_zone",
        "start_at",
        "end_at",
        "overlap",
        "catchup_window",
        "replace",
    }
)


def _json(status: int, body: Any) -> Response:
    return Response(codec.dumps(body), status_code=status, media_type="application/json")


def _duration(value: Any, field: str) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    return parse_duration(value, field)


def _time(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{field} must be an ISO 8601 time, not {value!r}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"{field} {value!r} is not an ISO 8601 time (such as 2026-12-07T03:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class ScheduleHandlers:
    """The schedule endpoints; every operation runs in the thread pool (the store blocks)."""

    def __init__(self, client: WorkflowClient) -> None:
        self._client = client

    def routes(self) -> list[tuple[str, str, Any, str]]:
        """(method, path, handler, error code) of each route."""
        return [
            ("POST", "/api/v1/schedules", self.create_schedule, "ERR_CREATE_SCHEDULE"),
            ("GET", "/api/v1/schedules", self.list_schedules, "ERR_LIST_SCHEDULES"),
            ("GET", "/api/v1/schedules/{schedule_id}", self.get_schedule, "ERR_GET_SCHEDULE"),
            (
                "POST",
                "/api/v1/schedules/{schedule_id}/pause",
                self.pause_schedule,
                "ERR_PAUSE_SCHEDULE",
            ),
            (
                "POST",
                "/api/v1/schedules/{schedule_id}/resume",
                self.resume_schedule,
                "ERR_RESUME_SCHEDULE",
            ),
            (
                "POST",
                "/api/v1/schedules/{schedule_id}/trigger",
                self.trigger_schedule,
                "ERR_TRIGGER_SCHEDULE",
            ),
            (
                "DELETE",
                "/api/v1/schedules/{schedule_id}",
                self.delete_schedule,
                "ERR_DELETE_SCHEDULE",
            ),
        ]

    async def create_schedule(self, request: Request) -> Response:
        """Create a schedule from the JSON body."""
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise InvalidInputError(f"the request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise InvalidInputError("the request body must be a JSON object")
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise InvalidInputError(
                f"unknown field(s) {', '.join(unknown)}; use {', '.join(sorted(_FIELDS))}"
            )
        for required in ("schedule_id", "workflow"):
            if not isinstance(body.get(required), str):
                raise InvalidInputError(f"{required} is required: a string")
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            raise InvalidInputError("replace must be true or false")
        catchup = _duration(body.get("catchup_window"), "catchup_window")
        schedule_id = await run_in_threadpool(
            functools.partial(
                self._client.schedules.create,
                str(body["schedule_id"]),
                str(body["workflow"]),
                cron=body.get("cron"),
                every=_duration(body.get("every"), "every"),
                input=codec.dumps(body["input"]) if body.get("input") is not None else None,
                start_at=_time(body.get("start_at"), "start_at"),
                end_at=_time(body.get("end_at"), "end_at"),
                overlap=body.get("overlap", "skip"),
                catchup_window=catchup if catchup is not None else timedelta(hours=1),
                time_zone=body.get("time_zone", "UTC"),
                replace=replace,
            )
        )
        described = await run_in_threadpool(self._client.schedules.get, schedule_id)
        assert described is not None
        return _json(201, described.to_json())

    async def list_schedules(self, request: Request) -> Response:
        """Every schedule."""
        described = await run_in_threadpool(self._client.schedules.list)
        return _json(200, [d.to_json() for d in described])

    async def get_schedule(self, request: Request) -> Response:
        """One schedule with its latest runs."""
        schedule_id = request.path_params["schedule_id"]
        described = await run_in_threadpool(self._client.schedules.get, schedule_id)
        if described is None:
            raise ScheduleNotFoundError(f"no schedule with id {schedule_id!r}")
        return _json(200, described.to_json())

    async def pause_schedule(self, request: Request) -> Response:
        """Pause a schedule."""
        await run_in_threadpool(self._client.schedules.pause, request.path_params["schedule_id"])
        return _json(200, {})

    async def resume_schedule(self, request: Request) -> Response:
        """Resume a schedule."""
        await run_in_threadpool(self._client.schedules.resume, request.path_params["schedule_id"])
        return _json(200, {})

    async def trigger_schedule(self, request: Request) -> Response:
        """Start the schedule's workflow now."""
        iid = await run_in_threadpool(
            self._client.schedules.trigger, request.path_params["schedule_id"]
        )
        return _json(202, {"instanceID": iid})

    async def delete_schedule(self, request: Request) -> Response:
        """Delete a schedule."""
        await run_in_threadpool(self._client.schedules.delete, request.path_params["schedule_id"])
        return _json(200, {})
