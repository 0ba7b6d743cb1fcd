"""``treadle serve``'s gRPC server: the durabletask ``TaskHubSidecarService`` of the Dapr sidecar.

The official, unmodified Dapr SDKs connect to it as they would to daprd. Its client half
(:mod:`treadle.server.grpc_instances`) starts and manages instances through the client layer's
:class:`~treadle.client.InstanceOperations`, as the Python client and the HTTP API do; its worker
half streams the runtime's remote work (:class:`~treadle.server.grpc_workers.SidecarWorkers`) to
the SDK workers over ``GetWorkItems`` and hands their answers back to the runtime, which commits
them the same way as the turns of local workflows.

A message that does not decode is INVALID_ARGUMENT, with one line in the log.

Errors never crash the server: treadle's errors become gRPC statuses (see
:mod:`treadle.server.grpc_instances` for the codes), anything unexpected is logged and answered
with INTERNAL. With an API token, every call must carry the ``dapr-api-token`` metadata, else
UNAUTHENTICATED. Requests larger than the payload cap are refused by gRPC with
RESOURCE_EXHAUSTED. Nothing received is unpickled: messages are protobuf and payloads JSON.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from datetime import datetime, timezone
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from treadle.client import WorkflowClient
from treadle.core.actions import CompleteOrchestration
from treadle.core.history import HistoryEvent, OrchestrationStatus, TaskCompleted, TaskFailed
from treadle.core.validation import check_action, check_text
from treadle.errors import (
    FailureDetails,
    InvalidInputError,
    RegistrationError,
    StoreUnavailableError,
    TreadleError,
    WorkflowAlreadyExistsError,
    WorkflowNotFoundError,
    WorkflowStateError,
)
from treadle.runtime import WorkflowRuntime
from treadle.server._proto import orchestrator_service_pb2 as spb
from treadle.server.grpc_codec import action_from_proto, failure_from_proto, version_from_proto
from treadle.server.grpc_instances import InstanceService, RpcFailure, json_payload
from treadle.server.grpc_metrics import counted
from treadle.server.grpc_requests import WorkItemEncoder
from treadle.server.grpc_values import optional_string
from treadle.server.grpc_workers import SidecarWorkers, Ticket, activity_request

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "SERVICE_NAME",
    "SidecarService",
    "TokenInterceptor",
    "api_token_from_env",
    "create_server",
]

logger = logging.getLogger(__name__)

SERVICE_NAME = "TaskHubSidecarService"
"""The service name (the protos have no package): methods are ``/TaskHubSidecarService/X``."""

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
"""The default cap on a received message (gRPC's own default)."""

MAX_TURN_ATTEMPTS = 3
"""How often a turn is sent again after an answer treadle cannot use, before the instance fails."""

_STREAM_POLL_S = 0.5
"""How often an idle ``GetWorkItems`` stream checks that its worker is still there."""

_TOKEN_HEADER = "dapr-api-token"

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


def api_token_from_env() -> str | None:
    """The API token in ``TREADLE_API_TOKEN`` or else ``DAPR_API_TOKEN`` (None if neither)."""
    return os.environ.get("TREADLE_API_TOKEN") or os.environ.get("DAPR_API_TOKEN") or None


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses, with UNAUTHENTICATED, every call without ``dapr-api-token: <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._deny: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
            _deny_unauthenticated
        )

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Pass the call on if it carries the token."""
        for key, value in handler_call_details.invocation_metadata or ():
            if key != _TOKEN_HEADER:
                continue
            given = value if isinstance(value, bytes) else value.encode()
            if hmac.compare_digest(given, self._token):
                return continuation(handler_call_details)
        return self._deny


def _deny_unauthenticated(request: Any, context: grpc.ServicerContext) -> None:
    context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        f"missing or wrong '{_TOKEN_HEADER}' metadata: this sidecar requires the API token "
        "(set DAPR_API_TOKEN for the SDK)",
    )


class SidecarService:
    """The worker half of the service, and the table of all its methods.

    Args:
        runtime: the runtime whose remote hook is ``workers``.
        client: a client on the runtime's store.
        workers: the queues the runtime submits remote work to.
    """

    def __init__(
        self, runtime: WorkflowRuntime, client: WorkflowClient, workers: SidecarWorkers
    ) -> None:
        self._runtime = runtime
        self._workers = workers
        self.instances = InstanceService(client)
        self._lock = threading.Lock()
        self._turn_failures: dict[str, int] = {}
        self._encoder = WorkItemEncoder()

    def hello(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        """``Hello``: the SDK's connection check."""
        return empty_pb2.Empty()

    # ---- the work-item stream ---------------------------------------------------------
    def get_work_items(
        self, request: spb.GetWorkItemsRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """``GetWorkItems``: stream this worker's share of the remote work until it leaves,
        each ``WorkItem`` serialized (see :mod:`treadle.server.grpc_requests`).

        Whatever it received and did not answer is sent again to the next worker.
        """
        stream = self._workers.connect(context.peer())
        context.add_callback(lambda: self._workers.disconnect(stream))
        logger.info("SDK worker connected: stream %d from %s", stream.id, stream.peer)
        self._runtime.retry_stalled()  # it may have the code a stalled instance waits for
        try:
            while context.is_active() and not stream.closed:
                ticket = self._workers.next_ticket(stream, _STREAM_POLL_S)
                if ticket is None:
                    continue
                item = self._work_item(ticket)
                if item is not None:
                    yield item
        finally:
            self._workers.disconnect(stream)
            logger.info("SDK worker disconnected: stream %d from %s", stream.id, stream.peer)

    def _work_item(self, ticket: Ticket) -> bytes | None:
        if ticket.activity is not None:
            item = ticket.activity
            tracing = self._runtime.tracing
            trace = (
                None if tracing is None else tracing.run_parent(item.instance_id, item.execution_id)
            )
            return self._encoder.activity_item(activity_request(item, trace), ticket.token)
        assert ticket.turn is not None
        try:
            return self._encoder.workflow_item(ticket.turn, ticket.token)
        except Exception:
            logger.exception("cannot send workflow %r to a worker", ticket.turn.instance_id)
            self._workers.forget(ticket)
            self._runtime.abandon_remote_turn(ticket.turn.instance_id, retry_after_s=5.0)
            return None

    # ---- answers ------------------------------------------------------------------------
    def complete_workflow_task(
        self, request: spb.WorkflowResponse, context: grpc.ServicerContext
    ) -> spb.CompleteTaskResponse:
        """``CompleteWorkflowTask`` / ``CompleteOrchestratorTask``: a turn's actions.

        An answer treadle cannot use (an action it cannot parse, one that breaks the rules of
        :mod:`treadle.core.validation` such as a child workflow id no API could reach, a custom
        status with a NUL character, or the SDK's own failure report with action id -1) abandons
        the turn, which is sent again a little later; after :data:`MAX_TURN_ATTEMPTS` such
        answers the instance fails with the last reason. An answer that matches no turn handed
        to the caller is NOT_FOUND (see :mod:`treadle.server.grpc_workers`).
        """
        iid = request.instanceId
        token = request.completionToken
        # (the caller's address only matters without a token: a grpc call to read it)
        turn = self._workers.take_workflow(token, iid, "" if token else context.peer())
        if turn is None:
            raise _not_outstanding(f"workflow {iid!r}", request.completionToken)
        custom_status = optional_string(request, "customStatus")
        try:
            actions = [check_action(action_from_proto(a)) for a in request.actions]
            check_text(custom_status, "custom status")
        except InvalidInputError as exc:
            custom_status = None  # (it may be what was wrong)
            reason = f"the SDK worker answered with an action treadle cannot run: {exc}"
            self._reject_turn(iid, FailureDetails(reason, "InvalidInputError"), custom_status)
            raise InvalidInputError(f"workflow {iid!r}: {exc}") from None
        crashed = next((a for a in actions if a.id == -1), None)
        if crashed is not None:
            failure = getattr(crashed, "failure", None) or FailureDetails(
                "the SDK worker could not run the turn", "WorkerError"
            )
            self._reject_turn(iid, failure, custom_status)
            return spb.CompleteTaskResponse()
        with self._lock:
            self._turn_failures.pop(iid, None)
        if any(isinstance(a, CompleteOrchestration) for a in actions):
            self._encoder.forget(iid)
        version = version_from_proto(request.version) if request.HasField("version") else None
        self._runtime.complete_remote_turn(iid, actions, custom_status, version)
        return spb.CompleteTaskResponse()

    def _reject_turn(self, iid: str, failure: FailureDetails, custom_status: str | None) -> None:
        with self._lock:
            attempts = self._turn_failures.get(iid, 0) + 1
            self._turn_failures[iid] = attempts
            if attempts >= MAX_TURN_ATTEMPTS:
                del self._turn_failures[iid]
        if attempts < MAX_TURN_ATTEMPTS:
            delay = float(2**attempts)
            logger.warning(
                "workflow %r: %s: %s; sending the turn again in %.0f s (attempt %d of %d)",
                iid, failure.error_type, failure.message, delay, attempts, MAX_TURN_ATTEMPTS,
            )  # fmt: skip
            self._runtime.abandon_remote_turn(iid, retry_after_s=delay)
            return
        logger.error(
            "workflow %r: %s: %s; failing the instance after %d attempts",
            iid, failure.error_type, failure.message, attempts,
        )  # fmt: skip
        fail = CompleteOrchestration(id=-1, status=OrchestrationStatus.FAILED, failure=failure)
        self._runtime.complete_remote_turn(iid, [fail], custom_status)

    def complete_activity_task(
        self, request: spb.ActivityResponse, context: grpc.ServicerContext
    ) -> spb.CompleteTaskResponse:
        """``CompleteActivityTask``: an activity's result or failure.

        A result that is not JSON is recorded as the activity's failure (so the workflow does
        not wait forever) and answered with INVALID_ARGUMENT. A result that matches no activity
        handed to the caller is NOT_FOUND and recorded nowhere.
        """
        ticket = self._workers.take_activity_ticket(
            request.completionToken,
            request.instanceId,
            request.taskId,
            "" if request.completionToken else context.peer(),
        )
        item = ticket.activity if ticket is not None else None
        if ticket is None or item is None:
            what = f"activity {request.taskId} of workflow {request.instanceId!r}"
            raise _not_outstanding(what, request.completionToken)
        now = datetime.now(timezone.utc)
        event: HistoryEvent
        error: InvalidInputError | None = None
        if request.HasField("failureDetails"):
            event = TaskFailed(
                timestamp=now,
                task_scheduled_id=item.task_id,
                failure=failure_from_proto(request.failureDetails),
                task_execution_id=item.task_execution_id,
            )
        else:
            try:
                result = json_payload(request, "result", "the activity result")
            except InvalidInputError as exc:
                error = exc
                event = TaskFailed(
                    timestamp=now,
                    task_scheduled_id=item.task_id,
                    failure=FailureDetails(str(exc), "InvalidInputError"),
                    task_execution_id=item.task_execution_id,
                )
            else:
                event = TaskCompleted(
                    timestamp=now,
                    task_scheduled_id=item.task_id,
                    result=result,
                    task_execution_id=item.task_execution_id,
                )
        self._runtime.complete_remote_activity(item, event)
        metrics = self._runtime.metrics
        if metrics is not None:  # from sending to the answer, as daprd measures it
            status = "failed" if isinstance(event, TaskFailed) else "success"
            metrics.activity_finished(item.name, status, time.monotonic() - ticket.sent_at)
        if error is not None:
            raise error
        return spb.CompleteTaskResponse()

    # ---- the method table -----------------------------------------------------------------
    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving every method of ``TaskHubSidecarService``."""
        inst = self.instances
        S = spb
        m = self._runtime.metrics  # Dapr's operation metrics (the Wait calls are not counted)
        methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "Hello": _unary(self.hello, empty_pb2.Empty),
            "StartInstance": _unary(
                counted(m, "create_workflow", inst.start_instance), S.CreateInstanceRequest
            ),
            "GetInstance": _unary(
                counted(m, "get_workflow", inst.get_instance), S.GetInstanceRequest
            ),
            "WaitForInstanceStart": _unary(inst.wait_for_instance_start, S.GetInstanceRequest),
            "WaitForInstanceCompletion": _unary(
                inst.wait_for_instance_completion, S.GetInstanceRequest
            ),
            "RaiseEvent": _unary(counted(m, "add_event", inst.raise_event), S.RaiseEventRequest),
            "TerminateInstance": _unary(
                counted(m, "terminate_workflow", inst.terminate_instance), S.TerminateRequest
            ),
            "SuspendInstance": _unary(
                counted(m, "suspend_workflow", inst.suspend_instance), S.SuspendRequest
            ),
            "ResumeInstance": _unary(
                counted(m, "resume_workflow", inst.resume_instance), S.ResumeRequest
            ),
            "PurgeInstances": _unary(
                counted(m, "purge_workflow", inst.purge_instances), S.PurgeInstancesRequest
            ),
            "GetWorkItems": _stream(self.get_work_items, S.GetWorkItemsRequest),
            "CompleteActivityTask": _unary(self.complete_activity_task, S.ActivityResponse),
            "CompleteOrchestratorTask": _unary(self.complete_workflow_task, S.WorkflowResponse),
            "CompleteWorkflowTask": _unary(self.complete_workflow_task, S.WorkflowResponse),
            "RerunWorkflowFromEvent": _unary(
                inst.rerun_workflow_from_event, S.RerunWorkflowFromEventRequest
            ),
            "ListInstanceIDs": _unary(inst.list_instance_ids, S.ListInstanceIDsRequest),
            "GetInstanceHistory": _unary(inst.get_instance_history, S.GetInstanceHistoryRequest),
        }
        return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


def create_server(
    runtime: WorkflowRuntime,
    client: WorkflowClient,
    workers: SidecarWorkers,
    *,
    host: str = "127.0.0.1",
    port: int = 50001,
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    api_token: str | None = None,
    max_threads: int = 256,
) -> tuple[grpc.Server, int]:
    """Build the gRPC server and bind it (not started).

    Args:
        runtime: the runtime, created with ``remote=workers``.
        client: a client on the runtime's store.
        workers: the runtime's remote hook.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        max_payload_bytes: the largest request accepted (larger: RESOURCE_EXHAUSTED).
        api_token: require it as ``dapr-api-token`` metadata on every call (None: open).
        max_threads: calls served at once (every connected worker's stream and every
            waiting Wait call holds one).

    Returns:
        the server, and the port it is bound to.

    Raises:
        ValueError: bad options.
        RuntimeError: the address cannot be bound.
    """
    if max_payload_bytes < 1:
        raise ValueError("max_payload_bytes must be >= 1")
    options = [
        ("grpc.max_receive_message_length", max_payload_bytes),
        ("grpc.max_send_message_length", -1),
        # The SDK pings every 30 s, also on an idle work-item stream: allow it.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
        ("grpc.http2.max_ping_strikes", 0),
        # Our own pings find workers that vanished without closing the connection.
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.so_reuseport", 0),
    ]
    interceptors: list[grpc.ServerInterceptor] = []
    if api_token:
        interceptors.append(TokenInterceptor(api_token))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="treadle-grpc"),
        handlers=[SidecarService(runtime, client, workers).handler()],
        interceptors=interceptors,
        options=options,
    )
    bound = server.add_insecure_port(_address(host, port))
    if bound == 0:
        raise RuntimeError(f"cannot listen on {host}:{port} for gRPC (address in use?)")
    return server, bound


def _not_outstanding(what: str, token: str) -> RpcFailure:
    """The answer to a completion that matches no work handed to the caller. (The phrase
    "unknown instance ID/task ID combo" is daprd's: the Python SDK logs it as a late answer.)"""
    logger.info("refused an answer for %s: it matches no outstanding work item", what)
    given = "its completion token names" if token else "this connection has"
    return RpcFailure(
        grpc.StatusCode.NOT_FOUND,
        f"unknown instance ID/task ID combo: {given} no outstanding work item for {what} "
        "(a late or repeated answer, or work this worker was not given); nothing was recorded",
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


# ---- the wrappers that turn exceptions into statuses ---------------------------------------
class _Undecodable:
    """What the deserializer hands on for bytes that are not a valid request message: gRPC
    itself would log a traceback and answer INTERNAL; the method answers INVALID_ARGUMENT."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _deserializer(request_type: type[Req]) -> Callable[[bytes], Req | _Undecodable]:
    def decode(data: bytes) -> Req | _Undecodable:
        try:
            return request_type.FromString(data)
        except Exception as exc:  # DecodeError, or anything else the bytes provoke
            return _Undecodable(
                f"the request is not a valid {request_type.__name__} message ({exc}); "
                "send the protobuf message of the durabletask protocol"
            )

    return decode


def _refuse_undecodable(request: _Undecodable, context: grpc.ServicerContext) -> NoReturn:
    logger.info("refused a call with INVALID_ARGUMENT: %s", request.message)
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


def _unary(
    fn: Callable[[Req, grpc.ServicerContext], Resp], request_type: type[Req]
) -> grpc.RpcMethodHandler[Req | _Undecodable, Resp]:
    def behavior(request: Req | _Undecodable, context: grpc.ServicerContext) -> Resp:
        if isinstance(request, _Undecodable):
            _refuse_undecodable(request, context)
        try:
            return fn(request, context)
        except Exception as exc:
            code, message = _status_of(exc)
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=_deserializer(request_type),
        response_serializer=_serialize,
    )


def _stream(
    fn: Callable[[Req, grpc.ServicerContext], Iterator[bytes]], request_type: type[Req]
) -> grpc.RpcMethodHandler[Req | _Undecodable, bytes]:
    """A server-streaming method whose responses are already serialized."""

    def behavior(request: Req | _Undecodable, context: grpc.ServicerContext) -> Iterator[bytes]:
        if isinstance(request, _Undecodable):
            _refuse_undecodable(request, context)
        try:
            yield from fn(request, context)
            return
        except Exception as exc:
            code, message = _status_of(exc)
        context.abort(code, message)

    return grpc.unary_stream_rpc_method_handler(
        behavior,
        request_deserializer=_deserializer(request_type),
        response_serializer=None,
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


_CODES: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (RegistrationError, grpc.StatusCode.INVALID_ARGUMENT),
    (WorkflowNotFoundError, grpc.StatusCode.NOT_FOUND),
    (WorkflowAlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (WorkflowStateError, grpc.StatusCode.FAILED_PRECONDITION),
    (StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def _status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, RpcFailure):
        return exc.code, exc.message
    for kind, code in _CODES:
        if isinstance(exc, kind):
            logger.debug("call refused with %s: %s", code.name, exc)
            return code, str(exc)
    if isinstance(exc, TreadleError):
        logger.warning("call failed: %s: %s", type(exc).__name__, exc)
        return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
    logger.exception("unexpected error in a gRPC call")
    return (
        grpc.StatusCode.INTERNAL,
        f"internal error in treadle serve ({type(exc).__name__}: {exc}); see the server log",
    )
