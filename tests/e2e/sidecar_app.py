"""The ``--app`` module of the ``treadle serve`` tests: workflows and activities run in-process.

``app_mixed`` calls ``sdk_shout``, which only the SDK worker registers; the SDK worker's
``sdk_calls_app_activity`` calls ``app_double``, which only this module registers.
``app_propagated_summary`` reports the history an SDK workflow propagated to it;
``app_propagates`` propagates its own to the SDK worker's ``sdk_audit``.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, TypeVar

import treadle as wf

R = TypeVar("R")
# Loaded by module name (``sidecar_app:runtime``), so it cannot import the package's helpers.
Workflow = Generator[wf.Task[Any], Any, R]
"""A workflow function's generator: yields tasks, is sent their results, returns ``R``."""

runtime = wf.WorkflowRuntime()


@runtime.activity
def app_hello(ctx: wf.WorkflowActivityContext, name: str) -> str:
    return f"Hello, {name}!"


@runtime.activity
def app_double(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return 2 * x


@runtime.workflow
def app_greet(ctx: wf.WorkflowContext, name: str) -> Workflow[dict[str, Any]]:
    greeting = yield ctx.call_activity(app_hello, input=name)
    return {"greeting": greeting, "instance_id": ctx.instance_id}


@runtime.workflow
def app_mixed(ctx: wf.WorkflowContext, text: str) -> Workflow[str]:
    local = yield ctx.call_activity(app_hello, input=text)
    remote: str = yield ctx.call_activity("sdk_shout", input=local)
    return remote


@runtime.workflow
def app_chain(ctx: wf.WorkflowContext, n: int) -> Workflow[int]:
    total = 0
    for i in range(n):
        total += yield ctx.call_activity(app_double, input=i)
    return total


@runtime.workflow
def app_wait_event(ctx: wf.WorkflowContext, _: object) -> Workflow[dict[str, Any]]:
    data = yield ctx.wait_for_external_event("go")
    return {"got": data}


@runtime.activity
def app_propagated_summary(ctx: wf.WorkflowActivityContext, _: object) -> Any:
    history = ctx.get_propagated_history()
    if history is None:
        return None
    return {
        "scope": history.scope.name,
        "chain": [[w.app_id, w.instance_id, w.name] for w in history.get_workflows()],
        "validated": [
            [a.completed, json.loads(a.output or "null")]
            for w in history.get_workflows()
            for a in w.get_activities_by_name("sdk_validate")
        ],
    }


@runtime.workflow
def app_propagates(ctx: wf.WorkflowContext, _: object) -> Workflow[Any]:
    yield ctx.call_activity("sdk_validate", input="app")
    return (yield ctx.call_activity("sdk_audit", propagation=wf.PropagationScope.OWN_HISTORY))
