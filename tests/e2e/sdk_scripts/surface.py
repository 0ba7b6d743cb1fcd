"""The public surface of the pinned Dapr workflow SDK, as JSON (run with the SDK venv's
python).

    surface.py

Prints, for ``dapr.ext.workflow`` and ``dapr.ext.workflow.aio``: every name of ``__all__``;
for a function, its parameters; for a class, its constructor's parameters and each public
member: a method's parameters (and whether it is a coroutine function), or that it is a
property or another attribute. A parameter is [name, kind, has a default].
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any


def parameters(obj: Any) -> list[list[Any]] | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [
        [p.name, p.kind.name, p.default is not inspect.Parameter.empty]
        for p in signature.parameters.values()
    ]


def describe_class(cls: type) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        raw = inspect.getattr_static(cls, name)
        if isinstance(raw, property):
            members[name] = {"kind": "property"}
        elif isinstance(raw, staticmethod | classmethod) or inspect.isfunction(raw):
            value = getattr(cls, name)
            members[name] = {
                "kind": "method",
                "params": parameters(value),
                "async": inspect.iscoroutinefunction(value),
            }
        else:
            members[name] = {"kind": "attribute"}
    return {
        "kind": "class",
        "enum": issubclass(cls, __import__("enum").Enum),
        "exception": issubclass(cls, BaseException),
        "init": parameters(vars(cls)["__init__"]) if "__init__" in vars(cls) else None,
        "members": members,
    }


surface: dict[str, Any] = {}
for module_name in ("dapr.ext.workflow", "dapr.ext.workflow.aio"):
    module = importlib.import_module(module_name)
    names: dict[str, Any] = {}
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            names[name] = describe_class(obj)
        elif callable(obj):
            names[name] = {"kind": "function", "params": parameters(obj)}
        else:
            names[name] = {"kind": "value"}
    surface[module_name] = names
print(json.dumps(surface, indent=1, sort_keys=True))
