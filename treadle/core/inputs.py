"""Calling a workflow or activity function with its input, as the Dapr SDK calls it.

The payload is decoded (see :mod:`treadle.core.codec`); if the function's input parameter is
annotated with a pydantic-style model (a class with ``model_validate``) or a dataclass,
possibly ``Optional``, the decoded value is rebuilt as that type. A function that takes no
input parameter is called with the context alone.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from treadle.core import codec
from treadle.errors import InvalidInputError

__all__ = ["accepts_input", "call_with_input", "input_type", "read_ahead", "rebuild"]


def accepts_input(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes a second positional argument (the input) after the context."""
    return _spec(fn)[0]


def input_type(fn: Callable[..., Any]) -> type | None:
    """The model or dataclass that ``fn``'s input parameter is annotated with, if any."""
    return _spec(fn)[1]


def read_ahead(fn: object) -> None:
    """Read now how ``fn`` takes its input (a runtime's start does it for the functions
    registered with it), so that its first call does not: ``inspect.signature`` and, for
    annotations written as text, ``typing.get_type_hints``, a fraction of a millisecond a
    function, which a fresh worker's first workflow paid. A function whose annotations name
    what is not defined yet is left to its first call, as before."""
    try:
        typing.get_type_hints(fn)
        _cached_spec(fn)  # (what is not a function fails here)
    except Exception:  # (a name not defined yet, an unhashable callable: read at the call)
        return


def call_with_input(fn: Callable[..., Any], ctx: Any, payload: str | None) -> Any:
    """Call ``fn(ctx, input)`` with ``payload`` decoded (and rebuilt as the annotated type),
    or ``fn(ctx)`` when there is no payload and ``fn`` takes no input.

    Raises:
        InvalidInputError: the payload is not JSON, or does not fit the annotated type.
    """
    value = codec.decode(payload)
    accepts, target = _spec(fn)
    if value is None and not accepts:
        return fn(ctx)
    if target is not None and value is not None:
        value = rebuild(value, target, what=f"the input of {_name(fn)}")
    return fn(ctx, value)


def rebuild(value: Any, cls: type, *, what: str = "a payload") -> Any:
    """``value`` (a decoded payload) as an instance of the model or dataclass ``cls``.

    Raises:
        InvalidInputError: ``value`` is not an object with fields that fit ``cls``.
    """
    if isinstance(value, cls):
        return value
    if isinstance(value, SimpleNamespace):
        value = vars(value)
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"{what} should be a {cls.__name__}, but the payload is a {type(value).__name__}"
        )
    try:
        if _is_model_class(cls):
            return cls.model_validate(value)  # type: ignore[attr-defined]
        return _build_dataclass(cls, value, what)
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"{what} does not fit {cls.__name__}: {exc}") from exc


def _build_dataclass(cls: type, value: dict[str, Any], what: str) -> Any:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        hints = {}
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra = sorted(set(value) - set(known))
    if extra:
        raise InvalidInputError(
            f"{what} does not fit {cls.__name__}: unknown field(s) {', '.join(extra)}"
        )
    kwargs: dict[str, Any] = {}
    for name, item in value.items():
        target = _rebuildable(hints.get(name))
        if target is not None and item is not None:
            item = rebuild(item, target, what=f"{what}, field {name!r}")
        kwargs[name] = item
    return cls(**kwargs)


def _spec(fn: Callable[..., Any]) -> tuple[bool, type | None]:
    """(takes an input parameter, the model or dataclass it is annotated with)."""
    try:
        return _cached_spec(fn)
    except TypeError:  # an unhashable callable
        return _read_spec(fn)


def _read_spec(fn: Callable[..., Any]) -> tuple[bool, type | None]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True, None
    positional = [
        p
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params) and len(positional) < 2:
        return True, None
    if len(positional) < 2:
        return False, None
    param = positional[1]
    annotation: Any = param.annotation
    if annotation is inspect.Parameter.empty:
        return True, None
    if isinstance(annotation, str):
        try:
            annotation = typing.get_type_hints(fn).get(param.name, annotation)
        except Exception:
            return True, None
    return True, _rebuildable(annotation)


_cached_spec = functools.lru_cache(maxsize=4096)(_read_spec)


def _rebuildable(annotation: Any) -> type | None:
    """The model or dataclass class an annotation names (``X | None`` unwrapped), or None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if not inspect.isclass(annotation):
        return None
    if _is_model_class(annotation) or dataclasses.is_dataclass(annotation):
        return annotation
    return None


def _is_model_class(cls: type) -> bool:
    return callable(getattr(cls, "model_validate", None)) and callable(
        getattr(cls, "model_dump", None)
    )


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or fn)
