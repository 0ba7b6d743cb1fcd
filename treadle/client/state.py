"""What a client reports about instances: :class:`WorkflowState` and :class:`WorkflowPage`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from treadle.client.status import WorkflowStatus
from treadle.core.records import record_class
from treadle.errors import FailureDetails
from treadle.store.base import InstanceRecord

__all__ = ["WorkflowPage", "WorkflowState"]


@record_class
class WorkflowState:
    """A snapshot of a workflow instance, as the Dapr SDK reports it.

    Attributes:
        instance_id: the instance's id.
        name: the workflow's name.
        runtime_status: its status.
        created_at: when it was created (UTC).
        last_updated_at: when it last changed (UTC).
        serialized_input: its input as JSON text (None without payloads).
        serialized_output: its output as JSON text.
        serialized_custom_status: its custom status as JSON text.
        failure_details: error_type, message and stack_trace if it failed.
        waiting_reason: why it waits for a worker, while no running worker can take its work
            (its workflow, or an activity it called, registered by no running worker of its
            app); None otherwise. Not in the Dapr SDK's state.
    """

    instance_id: str
    name: str
    runtime_status: WorkflowStatus
    created_at: datetime
    last_updated_at: datetime
    serialized_input: str | None
    serialized_output: str | None
    serialized_custom_status: str | None
    failure_details: FailureDetails | None
    waiting_reason: str | None = None

    @classmethod
    def from_record(cls, record: InstanceRecord, *, fetch_payloads: bool = True) -> WorkflowState:
        """Build a state from a store record."""
        return cls(
            instance_id=record.instance_id,
            name=record.name,
            runtime_status=WorkflowStatus.from_orchestration_status(record.status),
            created_at=record.created_at,
            last_updated_at=record.updated_at,
            serialized_input=record.input if fetch_payloads else None,
            serialized_output=record.output if fetch_payloads else None,
            serialized_custom_status=record.custom_status if fetch_payloads else None,
            failure_details=record.failure,
            waiting_reason=record.waiting,
        )

    def __str__(self) -> str:
        """The state as indented JSON (as the Dapr SDK prints it)."""
        return json.dumps(self.to_json(), indent=4, sort_keys=True)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this state."""
        failure = self.failure_details
        return {
            "instance_id": self.instance_id,
            "name": self.name,
            "runtime_status": self.runtime_status.name,
            "created_at": self.created_at.isoformat(),
            "last_updated_at": self.last_updated_at.isoformat(),
            "serialized_input": self.serialized_input,
            "serialized_output": self.serialized_output,
            "serialized_custom_status": self.serialized_custom_status,
            "waiting_reason": self.waiting_reason,
            "failure_details": None
            if failure is None
            else {
                "error_type": failure.error_type,
                "message": failure.message,
                "stack_trace": failure.stack_trace,
            },
        }


@record_class
class WorkflowPage:
    """One page of :meth:`~treadle.client.WorkflowClient.list_workflows`.

    Attributes:
        states: the instances, newest first.
        continuation_token: pass it back for the next page; None on the last page.
    """

    states: list[WorkflowState]
    continuation_token: str | None = None
