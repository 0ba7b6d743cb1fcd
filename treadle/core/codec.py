"""JSON payload encoding, the same as the Dapr SDK's.

Payloads cross processes and the network, so they are JSON (never pickle). ``None`` stays
``None`` (stored as no payload), and falsy values such as ``0``, ``""`` and ``{}`` round-trip
as themselves. As the Dapr SDK does (so a treadle worker and an SDK worker read each other's
data): a dataclass, a ``SimpleNamespace`` and a top-level namedtuple are encoded as an object
marked with ``"__durabletask_autoobject__": true``, which decodes to a ``SimpleNamespace``
(attribute access, as the SDK gives it); pydantic-style models are encoded as plain objects
and rebuilt from the function's annotation (see :mod:`treadle.core.inputs`).
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import orjson

from treadle.errors import InvalidInputError

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_PAYLOAD_OPTIONS = _OPTIONS | orjson.OPT_PASSTHROUGH_DATACLASS

AUTO_OBJECT = "__durabletask_autoobject__"
"""The key that marks an object the SDKs decode with attribute access."""
_AUTO_OBJECT_BYTES = AUTO_OBJECT.encode()


def _default(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 models
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.asdict(value)
        fields[AUTO_OBJECT] = True
        return fields
    if isinstance(value, SimpleNamespace):
        return {**vars(value), AUTO_OBJECT: True}
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
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a namedtuple, at the top only
        value = {**value._asdict(), AUTO_OBJECT: True}
    try:
        return orjson.dumps(value, default=_default, option=_PAYLOAD_OPTIONS).decode()
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
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"payload is not valid JSON: {exc}") from exc
    marked = AUTO_OBJECT in text if isinstance(text, str) else _AUTO_OBJECT_BYTES in text
    return _objects(value) if marked else value


def _objects(value: Any) -> Any:
    """``value`` with every marked object turned into a ``SimpleNamespace``."""
    if isinstance(value, list):
        return [_objects(v) for v in value]
    if isinstance(value, dict):
        fields = {k: _objects(v) for k, v in value.items()}
        if fields.pop(AUTO_OBJECT, False):
            return SimpleNamespace(**fields)
        return fields
    return value


def dumps(value: Any) -> str:
    """Encode any JSON-ready structure (not a user payload) to text."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(text: str | bytes) -> Any:
    """Decode JSON text written by :func:`dumps`."""
    return orjson.loads(text)
