"""The client half of ``TaskHubSidecarService``: start, inspect, signal and manage instances.

Every method takes the request message and the gRPC context and returns the response message;
it raises a :class:`~treadle.errors.TreadleError` or an :class:`RpcFailure`, which
:mod:`treadle.server.grpc` turns into a gRPC status. Payloads are checked to be JSON and then
stored as the text received, never re-encoded.

Status codes (the SDK retries FAILED_PRECONDITION and UNAVAILABLE on the Wait calls, so those two
never report a permanent error there): bad ids, names or payloads are INVALID_ARGUMENT; an
unknown instance is NOT_FOUND (but ``GetInstance`` and the Wait calls answer ``exists=false``);
an unfinished instance with the id is ALREADY_EXISTS; purging an unfinished instance is
FAILED_PRECONDITION; what treadle does not implement is UNIMPLEMENTED.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import grpc
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from treadle.client import WorkflowClient, validate_instance_id
from treadle.core import codec
from treadle.core.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionSuspended,
    ExecutionTerminated,
    OrchestrationStatus,
)
from treadle.errors import InvalidInputError, WorkflowNotFoundError, WorkflowStateError
from treadle.server._proto import orchestration_pb2 as opb
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_codec import (
    datetime_from_proto,
    datetime_to_proto,
    failure_to_proto,
    history_event_to_proto,
    status_from_proto,
    status_to_proto,
)
from treadle.server.grpc_values import optional_string, string_value
from treadle.store.base import (
    InstanceQuery,
    InstanceRecord,
    NewInstance,
    NewMessage,
    new_execution_id,
)

__all__ = ["InstanceService", "RpcFailure", "workflow_state"]

MAX_NAME_LENGTH = 1024
"""The longest workflow or event name accepted."""

DEFAULT_PAGE_SIZE = 100
"""``ListInstanceIDs`` page size when the request sets none."""

MAX_PAGE_SIZE = 10_000
"""The largest ``ListInstanceIDs`` page."""

_POLL_S = 0.5
"""How long a Wait call sleeps between looks when nothing wakes it sooner."""

# The Dapr API has no CONTINUED_AS_NEW or CANCELED: report them as the SDK expects.
_REPORTED = {
    OrchestrationStatus.CONTINUED_AS_NEW: OrchestrationStatus.RUNNING,
    OrchestrationStatus.CANCELED: OrchestrationStatus.TERMINATED,
}


class RpcFailure(Exception):
    """A request that ends with a specific gRPC status.

    Attributes:
        code: the status code.
        message: the status details.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def workflow_state(record: InstanceRecord, *, payloads: bool) -> opb.WorkflowState:
    """The ``WorkflowState`` of an instance; with ``payloads`` false, input, output and custom
    status stay unset."""
    status = _REPORTED.get(record.status, record.status)
    state = opb.WorkflowState(
        instanceId=record.instance_id,
        name=record.name,
        workflowStatus=status_to_proto(status),
        createdTimestamp=datetime_to_proto(record.created_at),
        lastUpdatedTimestamp=datetime_to_proto(record.updated_at),
        executionId=string_value(record.execution_id),
        parentInstanceId=string_value(record.parent_instance_id),
    )
    if record.status.is_terminal:
        state.completedTimestamp.CopyFrom(datetime_to_proto(record.updated_at))
    if record.failure is not None:
        state.failureDetails.CopyFrom(failure_to_proto(record.failure))
    if payloads:
        for field, value in (
            ("input", record.input),
            ("output", record.output),
            ("customStatus", record.custom_status),
        ):
            if value is not None:
                getattr(state, field).value = value
    return state


def json_payload(message: Message, field: str, what: str) -> str | None:
    """The JSON text in the ``StringValue`` field ``field``, checked; None if unset or empty.

    Raises:
        InvalidInputError: the text is not valid JSON (``what`` names it in the message).
    """
    text = optional_string(message, field)
    if text is None or text == "":
        return None
    try:
        codec.decode(text)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{what} is not valid JSON: {exc.__cause__ or exc}") from None
    return text


def _name(value: str, what: str) -> str:
    if not value:
        raise InvalidInputError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInputError(
            f"{what} is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    return value


class InstanceService:
    """The instance-management methods of the sidecar, over a client's store.

    Args:
        client: the client whose store holds the instances (the runtime's store).
    """

    def __init__(self, client: WorkflowClient) -> None:
        self._client = client
        self._store = client.store

    # ---- starting ----------------------------------------------------------------------
    def start_instance(
        self, request: spb.CreateInstanceRequest, context: grpc.ServicerContext
    ) -> spb.CreateInstanceResponse:
        """``StartInstance``: create an instance (its workflow may be unknown until a worker
        registers it). An empty id gets a new UUID."""
        iid = validate_instance_id(request.instanceId) if request.instanceId else uuid.uuid4().hex
        self._create(
            iid,
            _name(request.name, "name (the workflow name)"),
            json_payload(request, "input", "input"),
            datetime_from_proto(request.scheduledStartTimestamp)
            if request.HasField("scheduledStartTimestamp")
            else None,
        )
        return spb.CreateInstanceResponse(instanceId=iid)

    def rerun_workflow_from_event(
        self, request: spb.RerunWorkflowFromEventRequest, context: grpc.ServicerContext
    ) -> spb.RerunWorkflowFromEventResponse:
        """``RerunWorkflowFromEvent``: a new instance that keeps the finished source's history
        up to the activity scheduled as ``eventID`` and runs that activity (with ``input``
        when ``overwriteInput`` is set) and everything after it again. ``eventID`` 0 reruns
        the whole workflow (with ``input`` as the workflow's input when ``overwriteInput``).
        The new id is ``newInstanceID`` or a new UUID. ``newChildWorkflowInstanceID`` is
        UNIMPLEMENTED: a cut that would leave a child workflow without its result is refused
        (INVALID_ARGUMENT).
        """
        source_id = validate_instance_id(request.sourceInstanceID)
        if request.HasField("newChildWorkflowInstanceID"):
            raise RpcFailure(
                grpc.StatusCode.UNIMPLEMENTED,
                "treadle serve does not support newChildWorkflowInstanceID in a rerun",
            )
        self._require(source_id)
        new_id = (
            validate_instance_id(request.newInstanceID)
            if request.HasField("newInstanceID") and request.newInstanceID
            else None
        )
        kwargs: dict[str, Any] = {}
        if request.overwriteInput:
            kwargs["input"] = codec.decode(json_payload(request, "input", "input"))
        try:
            new_id = self._client.rerun_workflow_from_event(
                source_id, int(request.eventID), new_instance_id=new_id, **kwargs
            )
        except WorkflowStateError as exc:
            raise RpcFailure(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from exc
        return spb.RerunWorkflowFromEventResponse(newInstanceID=new_id)

    def _create(self, iid: str, name: str, text: str | None, start: datetime | None) -> None:
        self._store.create_instance(
            NewInstance(
                instance_id=iid,
                name=name,
                input=text,
                execution_id=new_execution_id(),
                scheduled_start=start,
            )
        )

    # ---- reading -----------------------------------------------------------------------
    def get_instance(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``GetInstance``: the state, or ``exists=false`` for an unknown id."""
        record = self._store.get_instance(validate_instance_id(request.instanceId))
        return self._response(record, request.getInputsAndOutputs)

    def wait_for_instance_start(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``WaitForInstanceStart``: long-poll until the instance is no longer PENDING."""
        return self._wait(request, context, lambda r: r.status is not OrchestrationStatus.PENDING)

    def wait_for_instance_completion(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``WaitForInstanceCompletion``: long-poll until the instance has finished."""
        return self._wait(request, context, lambda r: r.status.is_terminal)

    def _wait(
        self,
        request: spb.GetInstanceRequest,
        context: grpc.ServicerContext,
        done: Callable[[InstanceRecord], bool],
    ) -> spb.GetInstanceResponse:
        iid = validate_instance_id(request.instanceId)
        token = self._store.change_token()  # taken first, so no change is missed
        while True:
            record = self._store.get_instance(iid)
            if record is None or done(record):
                return self._response(record, request.getInputsAndOutputs)
            if not context.is_active():
                raise RpcFailure(grpc.StatusCode.CANCELLED, "the caller cancelled the wait")
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise RpcFailure(
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    f"workflow {iid!r} is still {record.status.name}",
                )
            wait = _POLL_S if remaining is None else min(_POLL_S, remaining)
            token = self._store.wait_for_work(wait, token)

    @staticmethod
    def _response(record: InstanceRecord | None, payloads: bool) -> spb.GetInstanceResponse:
        if record is None:
            return spb.GetInstanceResponse(exists=False)
        return spb.GetInstanceResponse(
            exists=True, workflowState=workflow_state(record, payloads=payloads)
        )

    def list_instance_ids(
        self, request: spb.ListInstanceIDsRequest, context: grpc.ServicerContext
    ) -> spb.ListInstanceIDsResponse:
        """``ListInstanceIDs``: a page of instance ids, newest first."""
        size = request.pageSize if request.HasField("pageSize") else 0
        if size > MAX_PAGE_SIZE:
            raise InvalidInputError(f"pageSize {size} is over the limit of {MAX_PAGE_SIZE}")
        cursor = request.continuationToken if request.HasField("continuationToken") else None
        page = self._store.list_instances(
            InstanceQuery(limit=size or DEFAULT_PAGE_SIZE, cursor=cursor or None)
        )
        response = spb.ListInstanceIDsResponse(instanceIds=[r.instance_id for r in page.instances])
        if page.next_cursor is not None:
            response.continuationToken = page.next_cursor
        return response

    def get_instance_history(
        self, request: spb.GetInstanceHistoryRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceHistoryResponse:
        """``GetInstanceHistory``: the current run's events, oldest first."""
        events = self._client.get_workflow_history(validate_instance_id(request.instanceId))
        return spb.GetInstanceHistoryResponse(events=[history_event_to_proto(e) for e in events])

    # ---- signalling --------------------------------------------------------------------
    def raise_event(
        self, request: spb.RaiseEventRequest, context: grpc.ServicerContext
    ) -> spb.RaiseEventResponse:
        """``RaiseEvent``: durable when it returns; NOT_FOUND for an unknown instance."""
        iid = validate_instance_id(request.instanceId)
        event = EventRaised(
            timestamp=_now(),
            name=_name(request.name, "name (the event name)"),
            input=json_payload(request, "input", "event data"),
        )
        self._store.send_message(NewMessage(iid, event))
        return spb.RaiseEventResponse()

    def terminate_instance(
        self, request: spb.TerminateRequest, context: grpc.ServicerContext
    ) -> spb.TerminateResponse:
        """``TerminateInstance``; a finished instance is left as it is."""
        record = self._require(validate_instance_id(request.instanceId))
        output = json_payload(request, "output", "output")
        if not record.status.is_terminal:
            event = ExecutionTerminated(timestamp=_now(), input=output, recurse=request.recursive)
            self._store.send_message(NewMessage(record.instance_id, event))
        return spb.TerminateResponse()

    def suspend_instance(
        self, request: spb.SuspendRequest, context: grpc.ServicerContext
    ) -> spb.SuspendResponse:
        """``SuspendInstance``; events that arrive meanwhile are delivered on resume."""
        record = self._require(validate_instance_id(request.instanceId))
        if not record.status.is_terminal:
            self._store.send_message(
                NewMessage(record.instance_id, ExecutionSuspended(timestamp=_now()))
            )
        return spb.SuspendResponse()

    def resume_instance(
        self, request: spb.ResumeRequest, context: grpc.ServicerContext
    ) -> spb.ResumeResponse:
        """``ResumeInstance``."""
        record = self._require(validate_instance_id(request.instanceId))
        if not record.status.is_terminal:
            self._store.send_message(
                NewMessage(record.instance_id, ExecutionResumed(timestamp=_now()))
            )
        return spb.ResumeResponse()

    def purge_instances(
        self, request: spb.PurgeInstancesRequest, context: grpc.ServicerContext
    ) -> spb.PurgeInstancesResponse:
        """``PurgeInstances`` by id (FAILED_PRECONDITION if it has not finished) or by filter
        (only the finished instances that match are purged)."""
        complete = True
        if request.HasField("instanceId"):
            iid = validate_instance_id(request.instanceId)
            count = self._store.purge_instance(iid, recursive=request.recursive)
        elif request.HasField("purgeInstanceFilter"):
            count, complete = self._purge_matching(request.purgeInstanceFilter, request.recursive)
        else:
            raise InvalidInputError("set instanceId or purgeInstanceFilter to say what to purge")
        return spb.PurgeInstancesResponse(
            deletedInstanceCount=count, isComplete=wrappers_pb2.BoolValue(value=complete)
        )

    def _purge_matching(self, purge: spb.PurgeInstanceFilter, recursive: bool) -> tuple[int, bool]:
        """Purge the finished instances the filter matches; return how many, and whether
        every one could be (not if a child is still running)."""
        statuses = tuple(status_from_proto(s) for s in purge.runtimeStatus)
        if OrchestrationStatus.TERMINATED in statuses:
            statuses += (OrchestrationStatus.CANCELED,)
        finished = tuple(s for s in statuses if s.is_terminal) or tuple(
            s for s in OrchestrationStatus if s.is_terminal
        )
        if statuses and not any(s.is_terminal for s in statuses):
            return 0, True  # only unfinished statuses asked for: nothing may be purged
        query = InstanceQuery(
            statuses=finished,
            created_from=datetime_from_proto(purge.createdTimeFrom)
            if purge.HasField("createdTimeFrom")
            else None,
            created_to=datetime_from_proto(purge.createdTimeTo)
            if purge.HasField("createdTimeTo")
            else None,
            limit=DEFAULT_PAGE_SIZE,
        )
        ids: list[str] = []
        while True:
            page = self._store.list_instances(query)
            ids.extend(r.instance_id for r in page.instances)
            if page.next_cursor is None:
                break
            query = InstanceQuery(
                statuses=query.statuses,
                created_from=query.created_from,
                created_to=query.created_to,
                limit=query.limit,
                cursor=page.next_cursor,
            )
        count = 0
        complete = True
        for iid in ids:
            if self._store.get_instance(iid) is None:  # purged already, as someone's child
                continue
            try:
                count += self._store.purge_instance(iid, recursive=recursive)
            except WorkflowStateError:
                complete = False
        return count, complete

    def _require(self, instance_id: str) -> InstanceRecord:
        record = self._store.get_instance(instance_id)
        if record is None:
            raise WorkflowNotFoundError(f"no workflow instance with id {instance_id!r}")
        return record


def _now() -> datetime:
    return datetime.now(timezone.utc)
