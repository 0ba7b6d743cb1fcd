"""JSON payload encoding.

Payloads cross processes and the network, so they are JSON (never pickle): dataclasses and
pydantic models are encoded as objects, ``None`` stays ``None`` (stored as no payload), and
falsy values such as ``0``, ``""`` and ``{}`` round-trip as themselves.
"""

from __future__ import annotations

from typing import Any

import orjson

from treadle.errors import InvalidInputError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 models
        return dump(mode="json")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"cannot encode a {type(value).__name__} as JSON")


def encode(value: Any) -> str | None:
    """Encode a payload as JSON text; ``None`` becomes no payload.

    Raises:
        InvalidInputError: the value cannot be represented as JSON.
    """
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except TypeError as exc:
        raise InvalidInputError(
            f"payload of type {type(value).__name__} is not JSON-serializable ({exc}); "
            "pass dicts, lists, str, numbers, bools, dataclasses or pydantic models"
        ) from exc


def decode(text: str | bytes | None) -> Any:
    """Decode JSON text; no payload (``None`` or empty) decodes to ``None``.

    Raises:
        InvalidInputError: the text is not valid JSON.
    """
    if text is None or text == "" or text == b"":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"payload is not valid JSON: {exc}") from exc


def dumps(value: Any) -> str:
    """Encode any JSON-ready structure (not a user payload) to text."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(text: str | bytes) -> Any:
    """Decode JSON text written by :func:`dumps`."""
    return orjson.loads(text)
