"""Records: dataclasses made with one generated method instead of six or seven.

:func:`record_class` is the package's ``@dataclass(frozen=True, slots=True)`` (or, with
``frozen=False``, ``@dataclass(slots=True)``): the same fields, ``__init__`` signature,
equality, hash, ``repr``, immutability, pickling, ``dataclasses.fields``/``replace``/``asdict``
and type checking (it is a ``dataclass_transform``), made for less, at import and per instance.

Why: CPython up to 3.12 compiles each method :mod:`dataclasses` generates with an ``exec`` of
its own (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, and for a frozen class
``__setattr__`` and ``__delattr__``): about a millisecond a frozen class on a small machine,
half a worker's start-up for the package's ~90 classes. A record asks :mod:`dataclasses` for
the fields and slots only, generates its ``__init__`` (the one method whose signature must be
real) and gives it the other methods as closures over the class's field names, made without
compiling anything.

A frozen record's ``__init__`` sets each field through its slot's own descriptor
(``member_descriptor.__set__``) rather than ``object.__setattr__(self, name, value)``: about a
third less per field on classes made on every workflow step (events, actions, store records);
a mutable one's assigns them (``self.name = value``), as dataclasses does.
A ``__post_init__`` is called as :mod:`dataclasses` calls it; an ``InitVar`` is refused at
import (none is used).

A record's ``__dataclass_params__`` says ``frozen=False`` (the methods that make it frozen are
its own): do not mix it with ``@dataclass(frozen=True)`` classes in one hierarchy (refused).

Threads: none (applied once per class, at import).
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_options: Any) -> Callable[[Any], Any]:
        """(What ``typing.dataclass_transform`` does at run time: nothing.)"""
        return lambda decorator: decorator


__all__ = ["generated_function", "is_record", "record_class"]

_T = TypeVar("_T")

_FROZEN = "__record_frozen__"
"""The class attribute a record keeps its frozenness in (its ``__dataclass_params__`` says
``frozen=False``, see the module)."""


@overload
def record_class(cls: type[_T], /) -> type[_T]: ...


@overload
def record_class(
    *, kw_only: bool = False, frozen: bool = True, eq: bool = True
) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record_class(
    cls: type[_T] | None = None,
    /,
    *,
    kw_only: bool = False,
    frozen: bool = True,
    eq: bool = True,
) -> Any:
    """Make ``cls`` a record class: ``@dataclass(frozen=frozen, slots=True, kw_only=kw_only,
    eq=eq)`` with one generated method (see the module). Use as ``@record_class`` or
    ``@record_class(kw_only=True)``; returns the new class (``slots`` makes one).

    Raises:
        TypeError: ``cls`` has an ``InitVar``, or a base of another frozenness.
    """

    def wrap(klass: type[_T]) -> type[_T]:
        return _make(klass, kw_only=kw_only, frozen=frozen, eq=eq)

    return wrap if cls is None else wrap(cls)


def is_record(cls: type) -> bool:
    """Whether ``cls`` was made by :func:`record_class`."""
    return _FROZEN in cls.__dict__


def _make(cls: type[_T], *, kw_only: bool, frozen: bool, eq: bool) -> type[_T]:
    """The record of ``cls`` (see :func:`record_class`)."""
    for base in cls.__mro__[1:]:
        params = base.__dict__.get("__dataclass_params__")
        if params is None:
            continue
        base_frozen = base.__dict__.get(_FROZEN, params.frozen)
        if base_frozen != frozen:
            kind = "frozen" if frozen else "mutable"
            raise TypeError(f"record {cls.__name__} is {kind} but its base {base.__name__} is not")
    body = cls.__dict__
    # (as dataclasses does: a method the class defines itself is kept, its __hash__ too)
    own = {name for name in ("__repr__", "__eq__") if name in body}
    if "__hash__" in body and not (body["__hash__"] is None and "__eq__" in body):
        own.add("__hash__")
    if frozen and ("__setattr__" in body or "__delattr__" in body):
        raise TypeError(f"{cls.__name__} is frozen: it cannot define __setattr__ or __delattr__")
    has_doc = bool(body.get("__doc__"))
    if not has_doc:  # (else dataclasses reads the signature of an __init__ not made yet)
        cls.__doc__ = cls.__name__
    made = dataclasses.dataclass(
        cls, init=False, repr=False, eq=False, frozen=False, slots=True, kw_only=kw_only
    )
    fields = dataclasses.fields(made)  # type: ignore[arg-type]  # (a dataclass just made)
    init_var = getattr(dataclasses, "_FIELD_INITVAR", None)  # (how dataclasses marks one)
    declared = made.__dict__["__dataclass_fields__"]
    if any(getattr(f, "_field_type", None) is init_var for f in declared.values()):
        raise TypeError(f"{cls.__name__} has an InitVar: records do not support them")
    setattr(made, _FROZEN, frozen)
    made.__init__ = _init_of(made)  # type: ignore[method-assign]
    if "__repr__" not in own:
        made.__repr__ = _repr(tuple(f.name for f in fields if f.repr))  # type: ignore[method-assign]
    if eq:
        if "__eq__" not in own:
            compared = tuple(f.name for f in fields if f.compare)
            made.__eq__ = _eq(_key(compared))  # type: ignore[method-assign]
        if "__hash__" in own:
            pass
        elif frozen:
            hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
            made.__hash__ = _hash(_key(hashed))  # type: ignore[method-assign,assignment]
        else:
            made.__hash__ = None  # type: ignore[assignment]
    if frozen:
        field_names = frozenset(f.name for f in fields)
        made.__setattr__ = _frozen_setattr(made, field_names)  # type: ignore[method-assign]
        made.__delattr__ = _frozen_delattr(made, field_names)  # type: ignore[method-assign]
        all_names = tuple(f.name for f in fields)
        made.__getstate__ = _getstate(_key(all_names))  # type: ignore[attr-defined]
        made.__setstate__ = _setstate(all_names)  # type: ignore[attr-defined]
    for name in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        method = made.__dict__.get(name)
        if name not in own and isinstance(method, types.FunctionType):
            method.__qualname__ = f"{made.__qualname__}.{name}"
    if not has_doc:  # (as dataclasses writes one: the name and signature)
        import inspect

        made.__doc__ = made.__name__ + str(inspect.signature(made)).replace(" -> None", "")
    return made


def _key(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the tuple of an object's ``names`` attributes."""
    if len(names) >= 2:
        return attrgetter(*names)
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return lambda obj: ()


def _repr(names: tuple[str, ...]) -> Callable[[Any], str]:
    """``__repr__`` as dataclasses writes it: ``Name(a=1, b='x')``."""

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        inner = ", ".join([f"{name}={getattr(self, name)!r}" for name in names])
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _eq(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any, Any], Any]:
    """``__eq__`` as dataclasses writes it: the compared fields' tuples, same class only."""

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], int]:
    """``__hash__`` as dataclasses writes it: the hash of the hashed fields' tuple."""

    def __hash__(self: Any) -> int:
        return hash(key(self))

    return __hash__


def _frozen_setattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str, Any], None]:
    """A frozen class's ``__setattr__``, as dataclasses writes it."""

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    return __setattr__


def _frozen_delattr(cls: type[Any], names: frozenset[str]) -> Callable[[Any, str], None]:
    """A frozen class's ``__delattr__``, as dataclasses writes it."""

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    return __delattr__


def _getstate(key: Callable[[Any], tuple[Any, ...]]) -> Callable[[Any], list[Any]]:
    """A frozen slotted class's ``__getstate__`` (for pickle and copy): its fields' values."""

    def __getstate__(self: Any) -> list[Any]:
        return list(key(self))

    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable[[Any, list[Any]], None]:
    """The ``__setstate__`` matching :func:`_getstate`, past the frozen ``__setattr__``."""

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    return __setstate__


def _init_of(cls: type) -> Any:
    """The ``__init__`` of record ``cls``: the signature :mod:`dataclasses` would give it,
    each field set through its slot (see the module)."""
    namespace: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    annotations: dict[str, Any] = {}
    frozen = cls.__dict__[_FROZEN]
    for field in dataclasses.fields(cls):
        name = field.name
        if frozen:
            namespace[f"_set_{name}"] = _slot(cls, name).__set__
        has_default = field.default is not dataclasses.MISSING
        has_factory = field.default_factory is not dataclasses.MISSING
        if has_default:
            namespace[f"_default_{name}"] = field.default
        if has_factory:
            namespace[f"_factory_{name}"] = field.default_factory
        # (a frozen record's field is set through its slot, a mutable one's by assignment:
        # the fastest way past a frozen __setattr__, and the fastest way of all)
        setter = f"    _set_{name}(self, {{}})" if frozen else f"    self.{name} = {{}}"
        if not field.init:  # (set from its default, or left unset, as dataclasses does)
            if has_default:
                body.append(setter.format(f"_default_{name}"))
            elif has_factory:
                body.append(setter.format(f"_factory_{name}()"))
            continue
        annotations[name] = field.type
        if has_default:
            param = f"{name}=_default_{name}"
        elif has_factory:
            param = f"{name}=_NO_VALUE"
            body.append(f"    if {name} is _NO_VALUE: {name} = _factory_{name}()")
        else:
            param = name
        (keyword if field.kw_only else positional).append(param)
        body.append(setter.format(name))
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    params_text = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({params_text}) -> None:\n" + "\n".join(body or ["    pass"])
    init = generated_function("__init__", source, namespace)
    init.__module__ = cls.__module__
    init.__annotations__ = {**annotations, "return": None}
    return init


def generated_function(name: str, source: str, namespace: dict[str, Any]) -> Any:
    """The function ``name`` defined by ``source`` (Python text) with ``namespace`` as its
    globals: the one place the package runs text as code. Callers pass text they make at
    import from their own class definitions (field names, as :mod:`dataclasses` does), never
    anything read or received; ``tests/reliability/test_unsafe_code.py`` holds them to it."""
    exec(source, namespace)
    return namespace[name]


class _NoValue:
    """The default of a field with a default factory, until the factory is called."""

    def __repr__(self) -> str:
        return "<factory>"


_NO_VALUE = _NoValue()


def _slot(cls: type, name: str) -> types.MemberDescriptorType:
    """The slot descriptor of field ``name`` (in the class of ``cls``'s MRO that made it)."""
    for klass in cls.__mro__:
        descriptor = klass.__dict__.get(name)
        if descriptor is not None:
            if not isinstance(descriptor, types.MemberDescriptorType):
                break
            return descriptor
    raise TypeError(f"{cls.__name__}.{name} is not a slot")
