"""JSON payload encoding, the same as the Dapr SDK's.

Payloads cross processes and the network, so they are JSON (never pickle). ``None`` stays
``None`` (stored as no payload), and falsy values such as ``0``, ``""`` and ``{}`` round-trip
as themselves. As the Dapr SDK does (so a treadle worker and an SDK worker read each other's
data): a dataclass, a ``SimpleNamespace`` and a top-level namedtuple are encoded as an object
marked with ``"__durabletask_autoobject__": true``, which decodes to a ``SimpleNamespace``
(attribute access, as the SDK gives it); pydantic-style models are encoded as plain objects
and rebuilt from the function's annotation (see :mod:`treadle.core.inputs`).

NaN and Infinity are not JSON: a payload holding one is refused with a clear error (never
silently written as ``null``). Python's ``json`` module (which the Dapr Python SDK uses)
writes them as the bare words ``NaN``/``Infinity``, so text from an SDK worker holding them
still decodes, to the same floats.
"""

from __future__ import annotations

import dataclasses
import json
import math
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
    kind = value.__class__
    if kind is int or kind is str or kind is bool:  # (no NaN, no object to mark: at once)
        try:
            return orjson.dumps(value).decode()
        except TypeError:  # an int beyond 64 bits: the full path says so
            pass
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a namedtuple, at the top only
        value = {**value._asdict(), AUTO_OBJECT: True}
    try:
        out = orjson.dumps(value, default=_default, option=_PAYLOAD_OPTIONS)
    except TypeError as exc:
        raise InvalidInputError(
            f"payload of type {type(value).__name__} is not JSON-serializable ({exc}); "
            "pass dicts, lists, str, numbers, bools, dataclasses or pydantic models"
        ) from exc
    if b"null" in out:  # (orjson writes NaN and Infinity as null: refuse them instead)
        where = _non_finite(value, "")
        if where is not None:
            raise InvalidInputError(
                f"payload holds a float that JSON cannot represent ({where}); NaN and "
                "Infinity are refused rather than changed to null: send None or a string "
                "such as 'NaN' instead"
            )
    return out.decode()


def _non_finite(value: Any, path: str) -> str | None:
    """Where ``value`` holds a NaN or an infinity (``"nan at [2]['x']"``), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value!r} at {path or 'the top'}"
    if isinstance(value, str | int | bool) or value is None:
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    elif callable(getattr(value, "tolist", None)):  # numpy arrays and scalars
        return _non_finite(value.tolist(), path)
    else:
        try:
            converted = _default(value)
        except TypeError:
            return None
        items = converted.items() if isinstance(converted, dict) else enumerate(converted)
    for key, item in items:
        where = _non_finite(item, f"{path}[{key!r}]")
        if where is not None:
            return where
    return None


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
        value = _python_json(text, exc)
    marked = AUTO_OBJECT in text if isinstance(text, str) else _AUTO_OBJECT_BYTES in text
    return _objects(value) if marked else value


def _python_json(text: str | bytes, exc: orjson.JSONDecodeError) -> Any:
    """Text orjson refused, as Python's ``json`` writes it (``NaN``, ``Infinity``: the Dapr
    Python SDK's payloads), else InvalidInputError."""
    words: tuple[Any, ...] = ("NaN", "Infinity") if isinstance(text, str) else (b"NaN", b"Infinity")
    if any(word in text for word in words):
        try:
            return json.loads(text)
        except ValueError:
            pass
    raise InvalidInputError(f"payload is not valid JSON: {exc}") from exc


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
