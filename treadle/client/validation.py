"""The checks every instance operation applies to what it receives, whichever edge it came
through (the Python client, the gRPC sidecar, the HTTP API): instance ids, workflow and event
names, and payloads, which must be JSON text.

Each check raises :class:`~treadle.errors.InvalidInputError` naming what was wrong; an edge
that must answer with a code of its own (the HTTP API's ``ERR_INSTANCE_ID_INVALID``) calls the
same check first and maps the error.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson

from treadle.errors import InvalidInputError

__all__ = [
    "MAX_INSTANCE_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "check_json",
    "parse_duration",
    "validate_instance_id",
    "validate_name",
]

MAX_INSTANCE_ID_LENGTH = 256
"""The longest instance id accepted."""

MAX_NAME_LENGTH = 1024
"""The longest workflow or event name accepted."""


def validate_instance_id(instance_id: Any) -> str:
    """Check an instance id from outside; return it.

    Raises:
        InvalidInputError: not a non-empty string of printable characters up to 256 long.
    """
    if not isinstance(instance_id, str) or not instance_id:
        raise InvalidInputError("instance_id must be a non-empty string")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        raise InvalidInputError(
            f"instance_id is {len(instance_id)} characters long; the limit is "
            f"{MAX_INSTANCE_ID_LENGTH}"
        )
    if not instance_id.isprintable():
        raise InvalidInputError(f"instance_id {instance_id!r} contains control characters")
    return instance_id


def validate_name(name: Any, what: str) -> str:
    """Check a workflow or event name from outside; return it.

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
        raise InvalidInputError(f"{what} {name!r} contains control characters")
    return name


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
