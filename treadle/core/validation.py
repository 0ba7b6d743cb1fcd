"""The rules for what comes in from outside, in one place for every edge and every store:
instance ids, workflow, activity and event names, filter strings and page tokens, JSON
payloads, and the actions a workflow turn asks for.

The Python client, the HTTP API, the gRPC sidecar (its client calls and the actions its SDK
workers answer with) and the workflow context (a child workflow's id and name) all check with
these functions, so that whatever can be created can also be reached, and SQLite and
PostgreSQL accept exactly the same values: PostgreSQL text cannot hold a NUL character, so no
id, name, filter or token may contain one (nor any other control character). Payloads are JSON
text, in which a NUL is always written as the escape ``\\u0000``, which both stores hold.

Each check raises :class:`~treadle.errors.InvalidInputError` naming what was wrong; an edge
that must answer with a code of its own (the HTTP API's ``ERR_INSTANCE_ID_INVALID``) calls the
same check first and maps the error.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson

from treadle.core.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    ScheduleTask,
    SendEvent,
)
from treadle.errors import InvalidInputError

__all__ = [
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_TOKEN_LENGTH",
    "check_action",
    "check_json",
    "check_text",
    "default_child_id",
    "parse_duration",
    "validate_instance_id",
    "validate_name",
    "validate_token",
]

MAX_INSTANCE_ID_LENGTH = 256
"""The longest instance id accepted."""

MAX_NAME_LENGTH = 1024
"""The longest workflow, activity, event or app name accepted."""

MAX_TOKEN_LENGTH = MAX_INSTANCE_ID_LENGTH + 64
"""The longest page token (continuation token) accepted: a store's tokens are an instance id
and a time."""


def validate_instance_id(instance_id: Any, what: str = "instance_id") -> str:
    """Check an instance id from outside; return it.

    Args:
        instance_id: the id.
        what: how to call it in the message (``"child workflow instance id"``).

    Raises:
        InvalidInputError: not a non-empty string of printable characters up to 256 long.
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInputError(f"{what} must be a non-empty string")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInputError(
            f"{what} is {len(instance_id)} characters long; the limit is {MAX_INSTANCE_ID_LENGTH}"
        )
    if not instance_id.isprintable():
        raise InvalidInputError(f"{what} {instance_id!r} contains control characters")
    return instance_id


def validate_name(name: Any, what: str) -> str:
    """Check a workflow, activity or event name from outside (or a name filter); return it.

    Args:
        name: the name.
        what: how to call it in the message (``"workflow name"``).

    Raises:
        InvalidInputError: not a non-empty string of printable characters up to 1024 long.
    """
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{what} must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    if not name.isprintable():
        raise InvalidInputError(f"{what} {_short(name)!r} contains control characters")
    return name


def validate_token(token: Any, what: str = "page token") -> str:
    """Check a page token (continuation token) from outside; return it. Only its shape is
    checked here; the store says whether it is one of its own.

    Raises:
        InvalidInputError: not a non-empty string of printable characters up to
            :data:`MAX_TOKEN_LENGTH` long; use the token a previous page returned.
    """
    if (
        not isinstance(token, str)
        or not token
        or len(token) > MAX_TOKEN_LENGTH
        or not token.isprintable()
    ):
        shown = _short(token) if isinstance(token, str) else token
        raise InvalidInputError(
            f"bad {what} {shown!r}: pass the token a previous page returned, or none"
        )
    return token


def default_child_id(parent_id: str, action_id: int) -> str:
    """The id of a child workflow started without one: ``f"{parent_id}:{action_id:04x}"``, as
    durabletask names it, unless that is over :data:`MAX_INSTANCE_ID_LENGTH`: then the parent's
    id is cut short and a hash of it keeps the id unique (and the same on every replay)."""
    child_id = f"{parent_id}:{action_id:04x}"
    if len(child_id) <= MAX_INSTANCE_ID_LENGTH:
        return child_id
    import hashlib  # (rare: only for a parent id near the length limit)

    digest = hashlib.sha256(parent_id.encode()).hexdigest()[:16]
    return f"{parent_id[:200]}~{digest}:{action_id:04x}"


def check_json(text: str | None, what: str) -> str | None:
    """Check that a payload is JSON text; return it as received (None for no payload, which an
    empty text also means).

    Args:
        text: the payload.
        what: how to call it in the message (``"input"``, ``"event data"``).

    Raises:
        InvalidInputError: the text is not valid JSON.
    """
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        raise InvalidInputError(f"{what} must be JSON text, not a {type(text).__name__}")
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc}") from None
    return text


def check_text(text: str | None, what: str) -> str | None:
    """Check free text kept as it is (an SDK's custom status, which need not be JSON): any
    characters but NUL, which PostgreSQL cannot store; return it.

    Raises:
        InvalidInputError: the text contains a NUL character.
    """
    if text is not None and "\x00" in text:
        raise InvalidInputError(
            f"{what} contains a NUL character (\\x00), which cannot be stored; "
            "send it JSON-encoded (a NUL in a JSON string is written \\u0000)"
        )
    return text


def check_action(action: Action) -> Action:
    """Check what a workflow turn asks for against the rules above; return the action.

    A child workflow's id and name, a target instance's id, activity and event names, app
    names and every payload: the same rules as a start or an event from a client, so that a
    turn never creates an instance, a task or a message no API could reach.

    Raises:
        InvalidInputError: naming the action, the field and the rule it breaks.
    """
    try:
        _check_fields(action)
    except InvalidInputError as exc:
        raise InvalidInputError(f"action {action.id} ({type(action).__name__}): {exc}") from None
    return action


def _check_fields(action: Action) -> None:
    match action:
        case ScheduleTask():
            validate_name(action.name, "activity name")
            check_json(action.input, "input")
            _check_app(action.app_id)
        case CreateSubOrchestration():
            validate_instance_id(action.instance_id, "child workflow instance id")
            validate_name(action.name, "child workflow name")
            check_json(action.input, "input")
            _check_app(action.app_id)
        case SendEvent():
            validate_instance_id(action.instance_id, "target instance id")
            validate_name(action.name, "event name")
            check_json(action.input, "event data")
        case CompleteOrchestration():
            check_json(action.result, "result")
            for event in action.carryover_events:
                validate_name(event.name, "carried-over event name")
                check_json(event.input, "carried-over event data")


def _check_app(app_id: str | None) -> None:
    if app_id:  # None or "": the caller's own app
        validate_name(app_id, "app id")


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}…({len(text)} characters)"


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def parse_duration(text: Any, what: str) -> timedelta:
    """A duration from outside, such as ``"7d"``, ``"1h30m"`` or ``"90s"`` (units s, m, h, d,
    w), as a timedelta.

    Args:
        text: the duration.
        what: how to call it in the message (``"--older-than"``).

    Raises:
        InvalidInputError: it is not such a duration.
    """
    value = text.strip().lower() if isinstance(text, str) else ""
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise InvalidInputError(
            f"{what} {text!r} is not a duration; write a number and a unit (s, m, h, d, w), "
            "such as 7d or 1h30m"
        )
    return timedelta(seconds=sum(float(n) * _DURATION_UNITS[u] for n, u in parts))
