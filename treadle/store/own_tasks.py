"""Own tasks: how a store keeps the one activity a worker runs for an instance it holds in
the instance's row (the contract is :data:`~treadle.store.base.OWN_TASK_RULES`).

Helpers shared by the backends: the ids of own tasks, their JSON text in the row, and what a
turn does to the row's own task.
"""

from __future__ import annotations

import itertools

import orjson

from treadle.store.base import ActivityWorkItem, NewActivity, TurnCommit

__all__ = [
    "next_own_task_id",
    "own_task_from_json",
    "own_task_json",
    "own_task_matches",
    "own_task_orphaned",
    "own_task_update",
]

_own_ids = itertools.count(-1, -1)


def next_own_task_id() -> int:
    """A new id for an own task: negative (task rows have positive ids), unique in this
    process."""
    return next(_own_ids)


def own_task_json(task: NewActivity) -> str:
    """How a store keeps an own task in its instance's row (JSON text)."""
    doc = {
        "eid": task.execution_id,
        "tid": task.task_id,
        "name": task.name,
        "inp": task.input,
        "teid": task.task_execution_id,
    }
    if task.app_id:  # (the tasks of no app are kept as they were before apps existed)
        doc["app"] = task.app_id
    return orjson.dumps(doc).decode()


def own_task_update(turn: TurnCommit) -> tuple[bool, str | None]:
    """What a turn does to its instance's own task: (whether it writes the column, the new
    value). It sets its own task if it has one; it clears the column if it consumes the own
    task (a negative id), cancels activities or gives the lease up (a task still there then
    is queued, see :func:`own_task_orphaned`); otherwise it leaves it as it is. (The turn's
    version fence says the column still holds the task this owner committed.)"""
    for activity in turn.new_activities:  # (plain loops: this is every turn's commit)
        if activity.own:
            return True, own_task_json(activity)
    if turn.cancel_activities or not turn.keep_lease:
        return True, None
    for consumed in turn.consumed_activities:
        if consumed < 0:
            return True, None
    return False, None


def own_task_orphaned(turn: TurnCommit) -> bool:
    """Whether an own task the instance's row may hold would be left with nobody to run it
    by ``turn``: the turn neither consumes nor cancels it, and it gives the lease up or sets
    another own task. A store then queues that task as an ordinary task row in the turn's
    commit, as a release of the lease does (OWN_TASK_RULES).

    A worker that knows of its own task never commits such a turn; one that does not (its
    commit of the task succeeded, but it saw an error and dropped the turn) may. A turn that
    ends its run drops the task instead (clears the column): its result would be moot."""
    if turn.create is not None or turn.cancel_activities or turn.status.is_terminal:
        return False
    for consumed in turn.consumed_activities:
        if consumed < 0:
            return False
    if not turn.keep_lease:
        return True
    sets_own = False
    for activity in turn.new_activities:  # (a plain loop: this is every turn's commit)
        if activity.own:
            sets_own = True
            break
    return sets_own


def own_task_from_json(instance_id: str, text: str) -> NewActivity:
    """The task :func:`own_task_json` wrote, as an unleased task to enqueue."""
    doc = orjson.loads(text)
    return NewActivity(
        instance_id=instance_id,
        execution_id=doc["eid"],
        task_id=int(doc["tid"]),
        name=doc["name"],
        input=doc["inp"],
        task_execution_id=doc["teid"],
        app_id=doc.get("app", ""),
    )


def own_task_matches(text: str | None, item: ActivityWorkItem) -> bool:
    """Whether an instance's own task (its JSON text, or None) is the task of ``item``."""
    if text is None:
        return False
    doc = orjson.loads(text)
    return bool(
        doc["tid"] == item.task_id
        and doc["eid"] == item.execution_id
        and doc["teid"] == item.task_execution_id
    )
