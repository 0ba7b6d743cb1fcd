"""Builders for the store contract tests: instances, claims and turns in one line each."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from treadle.core.history import (
    EventRaised,
    ExecutionCompleted,
    HistoryEvent,
    OrchestrationStatus,
    OrchestratorStarted,
    ParentInfo,
)
from treadle.store.base import (
    CommitOutcome,
    NewInstance,
    NewMessage,
    OrchestrationWorkItem,
    Store,
    TurnCommit,
)

RUNNING = OrchestrationStatus.RUNNING
COMPLETED = OrchestrationStatus.COMPLETED
PENDING = OrchestrationStatus.PENDING


def new_instance(
    instance_id: str,
    name: str = "wf",
    input: str | None = None,
    *,
    execution_id: str | None = None,
    parent: ParentInfo | None = None,
    scheduled_start: datetime | None = None,
    app_id: str = "",
) -> NewInstance:
    return NewInstance(
        instance_id=instance_id,
        name=name,
        input=input,
        execution_id=execution_id or f"{instance_id}-e1",
        parent=parent,
        scheduled_start=scheduled_start,
        app_id=app_id,
    )


def start(store: Store, instance_id: str, name: str = "wf", **kwargs: Any) -> None:
    store.create_instance(new_instance(instance_id, name, **kwargs))


def claim_one(
    store: Store, owner: str = "w1", lease_s: float = 30.0, *, limit: int = 10
) -> OrchestrationWorkItem:
    """Claim and return the one claimable instance (the oldest waiting one with ``limit=1``)."""
    items = store.claim_orchestrations(owner, limit, lease_s)
    assert len(items) == 1, [i.instance.instance_id for i in items]
    return items[0]


def turn(
    item: OrchestrationWorkItem,
    events: Sequence[HistoryEvent] = (),
    *,
    status: OrchestrationStatus = RUNNING,
    consume: bool = True,
    **kwargs: Any,
) -> TurnCommit:
    """A turn for a claimed item: appends ``events`` and consumes its messages."""
    record = item.instance
    fields: dict[str, Any] = {
        "instance_id": record.instance_id,
        "expected_version": record.version,
        "new_events": list(events),
        "history_start": record.history_len,
        "status": status,
        "execution_id": record.execution_id,
        "consumed_messages": [m.id for m in item.messages] if consume else [],
    }
    fields.update(kwargs)
    return TurnCommit(**fields)


def started_events(item: OrchestrationWorkItem) -> list[HistoryEvent]:
    """OrchestratorStarted plus the item's messages' events (what a runtime would append)."""
    return [OrchestratorStarted(), *(m.event for m in item.messages)]


def run_first_turn(store: Store, owner: str = "w1", **kwargs: Any) -> CommitOutcome:
    """Claim the oldest waiting instance and commit its first turn (RUNNING)."""
    item = claim_one(store, owner, limit=1)
    (outcome,) = store.commit_turns(owner, [turn(item, started_events(item), **kwargs)])
    assert outcome.ok, outcome
    return outcome


def finish(store: Store, instance_id: str, owner: str = "w1") -> None:
    """Run ``instance_id`` (the only waiting instance) to COMPLETED."""
    item = claim_one(store, owner)
    assert item.instance.instance_id == instance_id
    events = [*started_events(item), ExecutionCompleted(status=COMPLETED, result='"done"')]
    (outcome,) = store.commit_turns(
        owner, [turn(item, events, status=COMPLETED, output='"done"', cancel_activities=True)]
    )
    assert outcome.ok, outcome


def end(store: Store, instance_id: str, status: OrchestrationStatus = COMPLETED) -> None:
    """Deliver an event to ``instance_id`` and commit a turn that ends it with ``status``."""
    store.send_message(NewMessage(instance_id, EventRaised(name="end")))
    items = store.claim_orchestrations("ender", 100, 30)
    (item,) = [i for i in items if i.instance.instance_id == instance_id]
    (outcome,) = store.commit_turns("ender", [turn(item, started_events(item), status=status)])
    assert outcome.ok, outcome
    store.release_leases("ender")


def kinds(events: Sequence[HistoryEvent]) -> list[str]:
    return [e.KIND for e in events]
