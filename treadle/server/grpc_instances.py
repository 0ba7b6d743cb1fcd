"""The client half of ``TaskHubSidecarService``: start, inspect, signal and manage instances.

Every method takes the request message and the gRPC context, hands the operation to
:class:`~treadle.client.operations.InstanceOperations` (the layer the Python client and the
HTTP API use too) and returns the response message; it raises a
:class:`~treadle.errors.TreadleError` or an :class:`RpcFailure`, which
:mod:`treadle.server.grpc` turns into a gRPC status. Payloads are passed on as the JSON text
received: the layer checks them and stores them as they are, never re-encoded.

Status codes (the SDK retries FAILED_PRECONDITION and UNAVAILABLE on the Wait calls, so those two
never report a permanent error there): bad ids, names or payloads are INVALID_ARGUMENT; an
unknown instance is NOT_FOUND (but ``GetInstance`` and the Wait calls answer ``exists=false``);
an unfinished instance with the id is ALREADY_EXISTS; purging an unfinished instance is
FAILED_PRECONDITION; what treadle does not implement is UNIMPLEMENTED.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from treadle.client import InstanceOperations, WorkflowClient, check_json
from treadle.client.status import reported
from treadle.errors import InvalidInputError
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
from treadle.server.grpc_values import optional_string, string_value, trace_from_proto
from treadle.store.base import InstanceRecord

__all__ = ["InstanceService", "RpcFailure", "json_payload", "workflow_state"]

DEFAULT_PAGE_SIZE = 100
"""``ListInstanceIDs`` page size when the request sets none."""

MAX_PAGE_SIZE = 10_000
"""The largest ``ListInstanceIDs`` page."""


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
    state = opb.WorkflowState(
        instanceId=record.instance_id,
        name=record.name,
        workflowStatus=status_to_proto(reported(record.status)),
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
    return check_json(optional_string(message, field), what)


class InstanceService:
    """The instance-management methods of the sidecar, through a client's operations.

    Args:
        client: the client whose store holds the instances (the runtime's store).
    """

    def __init__(self, client: WorkflowClient) -> None:
        self._ops: InstanceOperations = client.operations

    # ---- starting ----------------------------------------------------------------------
    def start_instance(
        self, request: spb.CreateInstanceRequest, context: grpc.ServicerContext
    ) -> spb.CreateInstanceResponse:
        """``StartInstance``: create an instance (its workflow may be unknown until a worker
        registers it). An empty id gets a new UUID."""
        iid = self._ops.create(
            request.name,
            input=optional_string(request, "input"),
            instance_id=request.instanceId or None,
            start_at=datetime_from_proto(request.scheduledStartTimestamp)
            if request.HasField("scheduledStartTimestamp")
            else None,
            trace=trace_from_proto(request.parentTraceContext)
            if request.HasField("parentTraceContext")
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
        (INVALID_ARGUMENT). A source that has not finished is FAILED_PRECONDITION.
        """
        if request.HasField("newChildWorkflowInstanceID"):
            raise RpcFailure(
                grpc.StatusCode.UNIMPLEMENTED,
                "treadle serve does not support newChildWorkflowInstanceID in a rerun",
            )
        new_id = self._ops.rerun(
            request.sourceInstanceID,
            int(request.eventID),
            new_instance_id=request.newInstanceID or None,
            input=optional_string(request, "input"),
            overwrite_input=request.overwriteInput,
        )
        return spb.RerunWorkflowFromEventResponse(newInstanceID=new_id)

    # ---- reading -----------------------------------------------------------------------
    def get_instance(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``GetInstance``: the state, or ``exists=false`` for an unknown id."""
        record = self._ops.get(request.instanceId)
        return _response(record, request.getInputsAndOutputs)

    def wait_for_instance_start(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``WaitForInstanceStart``: long-poll until the instance is no longer PENDING."""
        try:
            record = self._ops.wait_for_start(
                request.instanceId, timeout_s=context.time_remaining(), check=_alive(context)
            )
        except TimeoutError as exc:
            raise RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        return _response(record, request.getInputsAndOutputs)

    def wait_for_instance_completion(
        self, request: spb.GetInstanceRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceResponse:
        """``WaitForInstanceCompletion``: long-poll until the instance has finished."""
        try:
            record = self._ops.wait_for_completion(
                request.instanceId, timeout_s=context.time_remaining(), check=_alive(context)
            )
        except TimeoutError as exc:
            raise RpcFailure(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)) from None
        return _response(record, request.getInputsAndOutputs)

    def list_instance_ids(
        self, request: spb.ListInstanceIDsRequest, context: grpc.ServicerContext
    ) -> spb.ListInstanceIDsResponse:
        """``ListInstanceIDs``: a page of instance ids, newest first."""
        size = request.pageSize if request.HasField("pageSize") else 0
        if size > MAX_PAGE_SIZE:
            raise InvalidInputError(f"pageSize {size} is over the limit of {MAX_PAGE_SIZE}")
        cursor = request.continuationToken if request.HasField("continuationToken") else None
        page = self._ops.list_instances(
            page_size=size or DEFAULT_PAGE_SIZE, continuation_token=cursor or None
        )
        response = spb.ListInstanceIDsResponse(instanceIds=[r.instance_id for r in page.instances])
        if page.next_cursor is not None:
            response.continuationToken = page.next_cursor
        return response

    def get_instance_history(
        self, request: spb.GetInstanceHistoryRequest, context: grpc.ServicerContext
    ) -> spb.GetInstanceHistoryResponse:
        """``GetInstanceHistory``: the current run's events, oldest first."""
        events = self._ops.get_history(request.instanceId)
        return spb.GetInstanceHistoryResponse(events=[history_event_to_proto(e) for e in events])

    # ---- signalling --------------------------------------------------------------------
    def raise_event(
        self, request: spb.RaiseEventRequest, context: grpc.ServicerContext
    ) -> spb.RaiseEventResponse:
        """``RaiseEvent``: durable when it returns; NOT_FOUND for an unknown instance."""
        self._ops.raise_event(
            request.instanceId, request.name, data=optional_string(request, "input")
        )
        return spb.RaiseEventResponse()

    def terminate_instance(
        self, request: spb.TerminateRequest, context: grpc.ServicerContext
    ) -> spb.TerminateResponse:
        """``TerminateInstance``; a finished instance is left as it is."""
        self._ops.terminate(
            request.instanceId,
            output=optional_string(request, "output"),
            recursive=request.recursive,
        )
        return spb.TerminateResponse()

    def suspend_instance(
        self, request: spb.SuspendRequest, context: grpc.ServicerContext
    ) -> spb.SuspendResponse:
        """``SuspendInstance``; events that arrive meanwhile are delivered on resume. The
        reason is kept in the ``ExecutionSuspended`` event."""
        self._ops.suspend(request.instanceId, reason=optional_string(request, "reason"))
        return spb.SuspendResponse()

    def resume_instance(
        self, request: spb.ResumeRequest, context: grpc.ServicerContext
    ) -> spb.ResumeResponse:
        """``ResumeInstance``; the reason is kept in the ``ExecutionResumed`` event."""
        self._ops.resume(request.instanceId, reason=optional_string(request, "reason"))
        return spb.ResumeResponse()

    def purge_instances(
        self, request: spb.PurgeInstancesRequest, context: grpc.ServicerContext
    ) -> spb.PurgeInstancesResponse:
        """``PurgeInstances`` by id (FAILED_PRECONDITION if it has not finished) or by filter
        (only the finished instances that match are purged)."""
        complete = True
        if request.HasField("instanceId"):
            count = self._ops.purge(request.instanceId, recursive=request.recursive)
        elif request.HasField("purgeInstanceFilter"):
            purge = request.purgeInstanceFilter
            outcome = self._ops.purge_matching(
                statuses=[status_from_proto(s) for s in purge.runtimeStatus],
                created_from=datetime_from_proto(purge.createdTimeFrom)
                if purge.HasField("createdTimeFrom")
                else None,
                created_to=datetime_from_proto(purge.createdTimeTo)
                if purge.HasField("createdTimeTo")
                else None,
                recursive=request.recursive,
            )
            count, complete = outcome.deleted, outcome.complete
        else:
            raise InvalidInputError("set instanceId or purgeInstanceFilter to say what to purge")
        return spb.PurgeInstancesResponse(
            deletedInstanceCount=count, isComplete=wrappers_pb2.BoolValue(value=complete)
        )


def _response(record: InstanceRecord | None, payloads: bool) -> spb.GetInstanceResponse:
    if record is None:
        return spb.GetInstanceResponse(exists=False)
    return spb.GetInstanceResponse(
        exists=True, workflowState=workflow_state(record, payloads=payloads)
    )


def _alive(context: grpc.ServicerContext) -> Callable[[], None]:
    """A wait's check that the caller is still there (CANCELLED once it is gone)."""

    def check() -> None:
        if not context.is_active():
            raise RpcFailure(grpc.StatusCode.CANCELLED, "the caller cancelled the wait")

    return check
