"""The new instance of a rerun: the source's history cut at an activity, with what must run
again queued (see :func:`treadle.core.rerun.plan_rerun`, which decides the cut)."""

from __future__ import annotations

from treadle.core.history import TimerFired
from treadle.core.rerun import plan_rerun
from treadle.store.base import (
    InstanceRecord,
    NewActivity,
    NewInstance,
    NewMessage,
    Store,
    new_execution_id,
)

__all__ = ["rerun_instance"]


def rerun_instance(
    store: Store,
    source: InstanceRecord,
    event_id: int,
    new_instance_id: str,
    new_input: str | None,
    overwrite_input: bool,
) -> NewInstance:
    """The instance that reruns the finished ``source`` from the activity scheduled as
    ``event_id`` (0: from the start), with ``new_input`` as that activity's (or the
    workflow's) input when ``overwrite_input``.

    Raises:
        InvalidInputError: no activity was scheduled as ``event_id``, or the cut would leave
            a child workflow without its result.
    """
    execution_id = new_execution_id()
    if event_id == 0:
        return NewInstance(
            instance_id=new_instance_id,
            name=source.name,
            input=new_input if overwrite_input else source.input,
            execution_id=execution_id,
            app_id=source.app_id,
        )
    plan = plan_rerun(
        store.get_history(source.instance_id),
        event_id,
        instance_id=new_instance_id,
        execution_id=execution_id,
        new_input=new_input,
        overwrite_input=overwrite_input,
    )
    return NewInstance(
        instance_id=new_instance_id,
        name=source.name,
        input=source.input,
        execution_id=execution_id,
        app_id=source.app_id,  # (in the source's app, as its history says)
        history=plan.history,
        activities=[
            NewActivity(
                instance_id=new_instance_id,
                execution_id=execution_id,
                task_id=e.event_id,
                name=e.name,
                input=e.input,
                task_execution_id=f"{execution_id}:{e.event_id}",
                app_id=source.app_id if e.app_id is None else e.app_id,
            )
            for e in plan.activities
        ],
        messages=[
            NewMessage(
                new_instance_id,
                TimerFired(timestamp=e.fire_at, timer_id=e.event_id, fire_at=e.fire_at),
                execution_id=execution_id,
                visible_at=e.fire_at,
            )
            for e in plan.timers
        ],
    )
