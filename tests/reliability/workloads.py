"""The reliability suite's workflows, and the outputs they must end with.

``journey`` uses every kind of step the suite exercises: an activity, a durable timer (checked
never to fire early), two child workflows (each a fan-out of activities), an external event,
and a last activity. ``chain`` is a short task chain, ``hop`` one activity (the soak's);
``waiter`` and its child ``napper`` wait for events (the control-plane races').
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import treadle as wf

TIMER_S = 0.3
CHILDREN = 2
FAN = 3

Workflow = Generator[Any, Any, Any]


def child(ctx: wf.WorkflowContext, y: int) -> Workflow:
    """A fan-out of ``FAN`` doublings, summed."""
    parts = yield wf.when_all([ctx.call_activity("double", input=y + i) for i in range(FAN)])
    return sum(parts)


def journey(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """Activity, timer, children, event, activity."""
    a = yield ctx.call_activity("inc", input=x)
    due = ctx.current_utc_datetime + timedelta(seconds=TIMER_S)
    yield ctx.create_timer(due)
    on_time = ctx.current_utc_datetime >= due
    kids = yield wf.when_all(
        [
            ctx.call_child_workflow(child, input=a + k, instance_id=f"{ctx.instance_id}.c{k}")
            for k in range(CHILDREN)
        ]
    )
    event = yield ctx.wait_for_external_event("go")
    b = yield ctx.call_activity("inc", input=sum(kids) + int(event))
    return {"out": b, "timer_on_time": on_time}


def hop(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """One increment (the soak's workflow)."""
    return (yield ctx.call_activity("inc", input=x))


def chain(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """Three increments."""
    for _ in range(3):
        x = yield ctx.call_activity("inc", input=x)
    return x


def napper(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """Waits for an event "wake", then returns x + 3 (a child that ends only when told)."""
    yield ctx.wait_for_external_event("wake")
    return x + 3


def waiter(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """The races' workflow: waits for "go", then for a child ``napper``, then an activity;
    returns [the event's payload, x + 4]."""
    event = yield ctx.wait_for_external_event("go")
    got = yield ctx.call_child_workflow(napper, input=x, instance_id=f"{ctx.instance_id}.c")
    last = yield ctx.call_activity("inc", input=got)
    return [event, last]


def doomed(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """Calls an activity that kills the process running it (poison work)."""
    return (yield ctx.call_activity("suicide", input=x))


def spinner(ctx: wf.WorkflowContext, x: int) -> Workflow:
    """One activity, then a loop that never yields (poison work)."""
    yield ctx.call_activity("inc", input=x)
    while True:
        pass


WORKFLOWS = [journey, child, chain, hop, waiter, napper, doomed, spinner]


def child_output(y: int) -> int:
    """What ``child(y)`` returns."""
    return sum(2 * (y + i) for i in range(FAN))


def journey_output(x: int, event: int) -> dict[str, Any]:
    """What ``journey(x)`` returns when its event carries ``event``."""
    a = x + 1
    kids = sum(child_output(a + k) for k in range(CHILDREN))
    return {"out": kids + event + 1, "timer_on_time": True}


def journey_expected(iid: str, x: int, event: int) -> dict[str, object]:
    """Every instance a ``journey`` start makes, with its output: itself and its children."""
    out: dict[str, object] = {iid: journey_output(x, event)}
    for k in range(CHILDREN):
        out[f"{iid}.c{k}"] = child_output(x + 1 + k)
    return out


def journey_executions() -> int:
    """Distinct activity tasks one ``journey`` runs (its children's included)."""
    return 2 + CHILDREN * FAN
