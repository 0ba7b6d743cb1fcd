"""Every public name of the pinned Dapr workflow SDK (1.18.3) exists in treadle with a
compatible signature.

The SDK cannot be imported in treadle's process, so ``sdk_scripts/surface.py`` lists its
surface (``dapr.ext.workflow.__all__``, ``dapr.ext.workflow.aio.__all__``, their classes'
public members, every signature) with the SDK's python. Each name must exist in ``treadle``
(``treadle.aio``); a function or method must take the same parameters, of the same kinds, in
the same order, optional where the SDK's are (treadle may add optional keyword parameters).
The few exceptions are listed below, each with its reason.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import re
import subprocess
from typing import Any

import pytest
from sdk_env import sdk_python

from .sidecar import SDK_SCRIPTS

pytestmark = pytest.mark.timeout(300)  # the first SDK test builds the SDK venv

MODULES = {"dapr.ext.workflow": "treadle", "dapr.ext.workflow.aio": "treadle.aio"}

OUT_OF_SCOPE = {
    "DaprMCPClient": "calls MCP tools through Dapr's MCP components, which treadle does not have",
    "MCPToolDef": "describes a tool of DaprMCPClient (see there)",
    "PropagatedHistory.from_proto": "builds the SDK's view from its own protobuf messages; "
    "treadle's propagated history holds treadle's events (PropagatedHistory.from_propagation)",
}
"""Names treadle does not offer, by design."""

PENDING: dict[str, str] = {}
"""Names another piece of work adds, each with what it waits for (none left)."""

BUILT_BY_TREADLE = {
    "DaprWorkflowContext": "the runtime builds it around a run (the SDK's wraps its engine's)",
    "WorkflowActivityContext": "the runtime builds it for an activity call",
    "WorkflowState": "the client builds it from a stored instance (the SDK's wraps a reply)",
}
"""Classes whose constructor user code never calls: only their members are compared."""

STORE_FIRST = {
    "WorkflowRuntime": "its first positional parameter is the store; the SDK's sidecar address "
    "and options are taken by keyword",
    "DaprWorkflowClient": "its first positional parameter is the store; the SDK's sidecar "
    "address and logger options are taken by keyword",
}
"""Constructors whose optional parameters treadle takes by keyword only."""


@pytest.fixture(scope="module")
def sdk_surface() -> dict[str, Any]:
    result = subprocess.run(
        [str(sdk_python()), str(SDK_SCRIPTS / "surface.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    surface: dict[str, Any] = json.loads(result.stdout)
    return surface


_MANGLED = re.compile(r"^_[A-Za-z]\w*?(__[A-Za-z]\w*)$")


def _unmangled(name: str) -> str:
    """A private parameter's name as written (``__fn``), whichever class mangled it:
    nobody can pass it by keyword, so only its place counts."""
    match = _MANGLED.match(name)
    return match.group(1) if match else name


def _ours(obj: Any) -> list[tuple[str, str, bool]]:
    return [
        (_unmangled(p.name), p.kind.name, p.default is not inspect.Parameter.empty)
        for p in inspect.signature(obj).parameters.values()
    ]


_POSITIONAL = ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")
_VARIADIC = ("VAR_POSITIONAL", "VAR_KEYWORD")


def incompatibilities(
    sdk: list[list[Any]], ours: list[tuple[str, str, bool]], *, by_keyword: bool = False
) -> list[str]:
    """How ``ours`` cannot be called as the SDK's signature ``sdk`` is (empty: it can).

    Args:
        by_keyword: the SDK's optional positional parameters may be keyword-only here, after
            optional positional parameters of treadle's own (a constructor in STORE_FIRST).
    """
    problems: list[str] = []
    sdk = [[_unmangled(p[0]), *p[1:]] for p in sdk]
    named = {name: (kind, has_default) for name, kind, has_default in ours}
    positional = [name for name, kind, _ in ours if kind in _POSITIONAL]
    sdk_positional = [p for p in sdk if p[1] in _POSITIONAL]
    if by_keyword:
        # self stays first; the SDK's optional ones may move to the keywords
        sdk_positional = [p for p in sdk_positional if not p[2]]
    if positional[: len(sdk_positional)] != [p[0] for p in sdk_positional]:
        problems.append(
            f"positional parameters {positional} do not start with the SDK's "
            f"{[p[0] for p in sdk_positional]}"
        )
    for name, kind, has_default in sdk:
        if name not in named:
            problems.append(f"no parameter {name!r}")
            continue
        our_kind, our_default = named[name]
        if kind in _VARIADIC or our_kind in _VARIADIC:
            if kind != our_kind:
                problems.append(f"{name!r} is {our_kind}, the SDK's {kind}")
            continue
        moved = by_keyword and has_default and kind in _POSITIONAL and our_kind == "KEYWORD_ONLY"
        if our_kind != kind and not moved:
            problems.append(f"{name!r} is {our_kind}, the SDK's {kind}")
        if has_default and not our_default:
            problems.append(f"{name!r} is required, optional in the SDK")
    sdk_names = {p[0] for p in sdk}
    for index, (name, kind, has_default) in enumerate(ours):
        if name in sdk_names or kind in _VARIADIC:
            continue
        if not has_default:
            problems.append(f"extra parameter {name!r} is required")
        elif kind in _POSITIONAL and index < len(sdk_positional) and not by_keyword:
            problems.append(f"extra positional parameter {name!r} comes before the SDK's")
    return problems


def _has_member(cls: type, name: str) -> bool:
    if hasattr(cls, name):
        return True
    return dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}


def _check_class(where: str, name: str, cls: type, sdk: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if sdk["enum"] and not issubclass(cls, enum.Enum):
        problems.append(f"{where}: is not an Enum")
    if sdk["exception"] and not issubclass(cls, BaseException):
        problems.append(f"{where}: is not an exception")
    if sdk["init"] is not None and name not in BUILT_BY_TREADLE:
        problems += [
            f"{where}(): {p}"
            for p in incompatibilities(
                sdk["init"],
                _ours(inspect.getattr_static(cls, "__init__")),
                by_keyword=name in STORE_FIRST,
            )
        ]
    for member, info in sorted(sdk["members"].items()):
        qualified = f"{name}.{member}"
        if qualified in OUT_OF_SCOPE or qualified in PENDING:
            continue
        if not _has_member(cls, member):
            problems.append(f"{where}.{member}: missing")
            continue
        if info["kind"] != "method":
            continue
        ours = getattr(cls, member)
        if not callable(ours):
            problems.append(f"{where}.{member}: not a method")
            continue
        if info["async"] and not inspect.iscoroutinefunction(ours):
            problems.append(f"{where}.{member}: not a coroutine function")
        problems += [
            f"{where}.{member}(): {p}" for p in incompatibilities(info["params"], _ours(ours))
        ]
    return problems


def test_every_public_name_of_the_sdk_exists_with_a_compatible_signature(
    sdk_surface: dict[str, Any],
) -> None:
    problems: list[str] = []
    compared = 0
    for sdk_module, our_module_name in MODULES.items():
        ours = importlib.import_module(our_module_name)
        for name, info in sorted(sdk_surface[sdk_module].items()):
            if name in OUT_OF_SCOPE or name in PENDING:
                continue
            where = f"{our_module_name}.{name}"
            obj = getattr(ours, name, None)
            if obj is None:
                problems.append(f"{where}: missing")
                continue
            compared += 1
            if info["kind"] == "class":
                if not inspect.isclass(obj):
                    problems.append(f"{where}: not a class")
                    continue
                problems += _check_class(where, name, obj, info)
            elif info["kind"] == "function":
                problems += [
                    f"{where}(): {p}" for p in incompatibilities(info["params"], _ours(obj))
                ]
    assert not problems, "incompatible with dapr-ext-workflow 1.18.3:\n" + "\n".join(problems)
    assert compared >= 18  # (every name but the MCP ones, both modules)


def test_the_exceptions_name_real_sdk_names(sdk_surface: dict[str, Any]) -> None:
    # An exception that no longer matches a name of the SDK hides nothing: drop it.
    names = {n for module in sdk_surface.values() for n in module}
    members = {
        f"{n}.{m}"
        for module in sdk_surface.values()
        for n, info in module.items()
        if info["kind"] == "class"
        for m in info["members"]
    }
    for listed in (*OUT_OF_SCOPE, *PENDING, *BUILT_BY_TREADLE, *STORE_FIRST):
        assert listed in names or listed in members, listed


def test_the_signature_rule_itself() -> None:
    sdk = [["self", "POSITIONAL_OR_KEYWORD", False], ["x", "POSITIONAL_OR_KEYWORD", False]]
    sdk_kw = [*sdk, ["flag", "KEYWORD_ONLY", True]]
    same = [("self", "POSITIONAL_OR_KEYWORD", False), ("x", "POSITIONAL_OR_KEYWORD", False)]
    assert incompatibilities(sdk, same) == []
    assert incompatibilities(sdk, [*same, ("extra", "KEYWORD_ONLY", True)]) == []
    assert incompatibilities(sdk, [*same, ("extra", "KEYWORD_ONLY", False)]) != []
    assert incompatibilities(sdk, [same[0], ("y", "POSITIONAL_OR_KEYWORD", False)]) != []
    assert incompatibilities(sdk_kw, [*same, ("flag", "KEYWORD_ONLY", False)]) != []
    assert incompatibilities(sdk_kw, [*same, ("flag", "POSITIONAL_OR_KEYWORD", True)]) != []
    optional = [["self", "POSITIONAL_OR_KEYWORD", False], ["host", "POSITIONAL_OR_KEYWORD", True]]
    store_first = [
        ("self", "POSITIONAL_OR_KEYWORD", False),
        ("store", "POSITIONAL_OR_KEYWORD", True),
        ("host", "KEYWORD_ONLY", True),
    ]
    assert incompatibilities(optional, store_first) != []
    assert incompatibilities(optional, store_first, by_keyword=True) == []
