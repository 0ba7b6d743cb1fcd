"""The ``--app`` module of the dashboard tests: a fan-out, a workflow with retries, one that
waits on an event after starting a child, and one whose output holds markup."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import treadle as wf

runtime = wf.WorkflowRuntime()
_attempts: dict[str, int] = {}


@runtime.activity
def square(ctx: wf.WorkflowActivityContext, x: int) -> int:
    return x * x


@runtime.activity
def flaky(ctx: wf.WorkflowActivityContext, key: str) -> str:
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < 3:
        raise ConnectionError(f"attempt {_attempts[key]} of {key} failed")
    return f"{key} done after {_attempts[key]} attempts"


@runtime.workflow
def fan_out(ctx: wf.WorkflowContext, n: int) -> Generator[Any, Any, int]:
    squares = yield wf.when_all([ctx.call_activity(square, input=i) for i in range(n)])
    yield ctx.create_timer(timedelta(milliseconds=50))
    return int(sum(squares))


@runtime.workflow
def with_retries(ctx: wf.WorkflowContext, key: str) -> Generator[Any, Any, str]:
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=5
    )
    result: str = yield ctx.call_activity(flaky, input=key, retry_policy=policy)
    return result


@runtime.workflow
def child_step(ctx: wf.WorkflowContext, item: str) -> Generator[Any, Any, str]:
    value = yield ctx.call_activity(square, input=len(item))
    return f"{item}: {value}"


@runtime.workflow
def approval(ctx: wf.WorkflowContext, order: str) -> Generator[Any, Any, dict[str, Any]]:
    ctx.set_custom_status({"phase": "waiting for approval"})
    shipped = yield ctx.call_child_workflow(child_step, input=order)
    decision = yield ctx.wait_for_external_event("approve")
    return {"shipped": shipped, "decision": decision}


@runtime.workflow
def markup(ctx: wf.WorkflowContext, text: str) -> Generator[Any, Any, str]:
    yield ctx.create_timer(timedelta(milliseconds=1))
    return text


@runtime.activity
def refuse(ctx: wf.WorkflowActivityContext, why: str) -> None:
    raise ValueError(why)


@runtime.workflow
def doomed(ctx: wf.WorkflowContext, why: str) -> Generator[Any, Any, None]:
    yield ctx.call_activity(refuse, input=why)


@runtime.activity
def summarize(ctx: wf.WorkflowActivityContext, values: list[Any]) -> str:
    return f"{len(values)} results"


@runtime.workflow
def pipeline(ctx: wf.WorkflowContext, n: int) -> Generator[Any, Any, str]:
    """A step, a fan-out of two kinds (one retried), a child, a timer, a last step."""
    first = yield ctx.call_activity(square, input=n)
    policy = wf.RetryPolicy(
        first_retry_interval=timedelta(milliseconds=20), max_number_of_attempts=5
    )
    tasks = [ctx.call_activity(square, input=i) for i in range(n)]
    tasks.append(ctx.call_activity(flaky, input=f"{ctx.instance_id}-flaky", retry_policy=policy))
    results = yield wf.when_all(tasks)
    shipped = yield ctx.call_child_workflow(child_step, input="parcel")
    yield ctx.create_timer(timedelta(milliseconds=30))
    summary: str = yield ctx.call_activity(summarize, input=[first, *results, shipped])
    return summary
