"""A faster ``__init__`` for frozen, slotted dataclasses made on every workflow step.

A frozen dataclass's generated ``__init__`` sets each field with ``object.__setattr__(self,
name, value)``: a generic attribute assignment that looks the name up in the class each time.
A step of a chain makes about eighty such fields (its events, action, turn, activity item,
outcome), at about two thousand machine instructions each. :func:`faster_init` gives a class
an ``__init__`` with the same signature and effect that sets each field through its slot's
own descriptor (``member_descriptor.__set__``), which skips the lookup: about a third less
per field. The instances stay frozen (assignment still raises ``FrozenInstanceError``),
hashable and equal as before; ``dataclasses.replace`` and pickling go through the same
paths.

Only what those classes use is supported: fields with ``init=True``, plain defaults and
default factories, positional or keyword-only; a class with ``__post_init__``, an
``InitVar`` or a field left out of ``__init__`` is refused at import, so that nothing is
silently set differently.

Threads: none (called once per class, at import).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, TypeVar

__all__ = ["REPLACED", "faster_init", "generated_function"]

_T = TypeVar("_T")

REPLACED: dict[type, Any] = {}
"""Each class :func:`faster_init` was applied to, with the ``__init__`` dataclasses made for
it (kept to compare the two: see the tests)."""


def faster_init(cls: type[_T]) -> type[_T]:
    """Replace the ``__init__`` of ``cls``, a frozen dataclass with ``slots=True``, by one
    that sets its fields through their slots (see the module); returns ``cls``.

    Raises:
        TypeError: ``cls`` is not such a dataclass, or uses what is not supported.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots=True")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__: keep its dataclass __init__")
    init_var = getattr(dataclasses, "_FIELD_INITVAR", None)  # (how dataclasses marks one)
    declared = getattr(cls, "__dataclass_fields__", {})
    if any(getattr(f, "_field_type", None) is init_var for f in declared.values()):
        raise TypeError(f"{cls.__name__} has an InitVar")
    namespace: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]  # (checked above)
        if not field.init:
            raise TypeError(f"{cls.__name__}.{field.name} is not set by __init__")
        name = field.name
        namespace[f"_set_{name}"] = _slot(cls, name).__set__
        if field.default is not dataclasses.MISSING:
            namespace[f"_default_{name}"] = field.default
            param = f"{name}=_default_{name}"
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{name}"] = field.default_factory
            param = f"{name}=_NO_VALUE"
            body.append(f"    if {name} is _NO_VALUE: {name} = _factory_{name}()")
        else:
            param = name
        (keyword if field.kw_only else positional).append(param)
        body.append(f"    _set_{name}(self, {name})")
    params_text = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({params_text}):\n" + "\n".join(body or ["    pass"])
    init = generated_function("__init__", source, namespace)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    init.__annotations__ = dict(cls.__init__.__annotations__)  # (as dataclasses wrote them)
    REPLACED[cls] = cls.__init__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


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
