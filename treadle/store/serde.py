"""Row encoding shared by the SQL backends: events, failures, times, instance rows."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

from treadle.core import codec
from treadle.core.history import (
    HistoryEvent,
    OrchestrationStatus,
    Propagation,
    SubOrchestrationInstanceFailed,
    event_from_dict,
    event_to_json,
    propagation_from_dict,
    propagation_to_dict,
)
from treadle.errors import FailureDetails
from treadle.store.base import InstanceRecord, NewInstance, NewMessage


def encode_event(event: HistoryEvent) -> str:
    """JSON text of a history event."""
    return event_to_json(event)


def decode_event(text: str | bytes) -> HistoryEvent:
    """A history event from :func:`encode_event`'s text."""
    return event_from_dict(codec.loads(text))


def encode_propagation(value: Propagation | None) -> str | None:
    """JSON text of a propagated history (an activity task's), or None."""
    return None if value is None else codec.dumps(propagation_to_dict(value))


def decode_propagation(text: str | bytes | None) -> Propagation | None:
    """A propagated history from :func:`encode_propagation`'s text."""
    return None if not text else propagation_from_dict(codec.loads(text))


def encode_failure(failure: FailureDetails | None) -> str | None:
    """JSON text of failure details, or None."""
    return None if failure is None else codec.dumps(dataclasses.asdict(failure))


def decode_failure(text: str | None) -> FailureDetails | None:
    """Failure details from :func:`encode_failure`'s text."""
    return None if not text else FailureDetails(**codec.loads(text))


def to_epoch(value: datetime) -> float:
    """Seconds since the epoch of an aware datetime (naive ones are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


_MAX_DATETIME = datetime.max.replace(tzinfo=timezone.utc)
_MAX_EPOCH = _MAX_DATETIME.timestamp()  # rounds up to year 10000 as a float


def from_epoch(value: float) -> datetime:
    """An aware UTC datetime from seconds since the epoch.

    ``datetime.max`` (the fire time of a timer that never fires, such as the SDK's timer for
    an indefinite ``wait_for_external_event``) survives the round trip through
    :func:`to_epoch`, whose float rounds it past the range of ``datetime``.
    """
    if value >= _MAX_EPOCH:
        return _MAX_DATETIME
    return datetime.fromtimestamp(value, tz=timezone.utc)


INSTANCE_COLUMNS = (
    "instance_id, name, status, execution_id, input, output, custom_status, failure, "
    "created_at, updated_at, parent_instance_id, history_len, version, app_id, waiting"
)


def instance_from_row(row: Any) -> InstanceRecord:
    """An :class:`InstanceRecord` from a row selected with :data:`INSTANCE_COLUMNS`."""
    created = row[8]
    updated = row[9]
    return InstanceRecord(
        instance_id=row[0],
        name=row[1],
        status=OrchestrationStatus[row[2]],
        execution_id=row[3],
        input=row[4],
        output=row[5],
        custom_status=row[6],
        failure=decode_failure(row[7]),
        created_at=created if isinstance(created, datetime) else from_epoch(created),
        updated_at=updated if isinstance(updated, datetime) else from_epoch(updated),
        parent_instance_id=row[10],
        history_len=row[11],
        version=row[12],
        app_id=row[13],
        waiting=row[14],
    )


def child_refused(child: NewInstance, reason: str, now: float) -> NewMessage:
    """The message telling a parent that its child could not be created."""
    assert child.parent is not None
    event = SubOrchestrationInstanceFailed(
        timestamp=from_epoch(now),
        task_scheduled_id=child.parent.task_scheduled_id,
        failure=FailureDetails(message=reason, error_type="WorkflowAlreadyExistsError"),
    )
    return NewMessage(child.parent.instance_id, event, execution_id=child.parent.execution_id)
