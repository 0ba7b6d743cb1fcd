"""Scalar values of the durabletask protocol: payloads, timestamps, statuses, failures.

Conventions (shared by :mod:`treadle.server.grpc_events` and :mod:`treadle.server.grpc_codec`):
- a payload (JSON text) travels in a ``google.protobuf.StringValue``; ``None`` leaves the wrapper
  unset, and an unset wrapper reads back as ``None`` (an empty string stays an empty string);
- datetimes are UTC-aware; a naive datetime is taken as UTC. ``INDEFINITE_FIRE_AT``
  (``datetime.max``) maps to the SDK's sentinel ``9999-12-31T23:59:59.999999999Z`` and back, so
  the "optional" timer that the SDK schedules for an indefinite ``wait_for_external_event``
  replays as such (a timestamp truncated to microseconds would not be recognised and would shift
  every later sequence id); the engine must never fire a timer due at ``INDEFINITE_FIRE_AT``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf import timestamp_pb2, wrappers_pb2
from google.protobuf.message import Message

from treadle.core.history import OrchestrationStatus, TraceContext, valid_traceparent
from treadle.errors import FailureDetails, InvalidInputError
from treadle.server._proto import orchestration_pb2 as opb

__all__ = [
    "INDEFINITE_FIRE_AT",
    "datetime_from_proto",
    "datetime_to_proto",
    "failure_from_proto",
    "failure_to_proto",
    "optional_string",
    "status_from_proto",
    "status_to_proto",
    "string_value",
    "trace_from_proto",
    "trace_to_proto",
]

INDEFINITE_FIRE_AT = datetime.max.replace(tzinfo=timezone.utc)
"""The fire time of a timer that never fires (the SDK's optional timer for an indefinite wait)."""

_SENTINEL_SECONDS = 253402300799  # 9999-12-31T23:59:59Z
_SENTINEL_NANOS = 999_999_999

_STATUS_TO_PROTO: dict[OrchestrationStatus, opb.OrchestrationStatus] = {
    OrchestrationStatus.RUNNING: opb.ORCHESTRATION_STATUS_RUNNING,
    OrchestrationStatus.COMPLETED: opb.ORCHESTRATION_STATUS_COMPLETED,
    OrchestrationStatus.CONTINUED_AS_NEW: opb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
    OrchestrationStatus.FAILED: opb.ORCHESTRATION_STATUS_FAILED,
    OrchestrationStatus.CANCELED: opb.ORCHESTRATION_STATUS_CANCELED,
    OrchestrationStatus.TERMINATED: opb.ORCHESTRATION_STATUS_TERMINATED,
    OrchestrationStatus.PENDING: opb.ORCHESTRATION_STATUS_PENDING,
    OrchestrationStatus.SUSPENDED: opb.ORCHESTRATION_STATUS_SUSPENDED,
    OrchestrationStatus.STALLED: opb.ORCHESTRATION_STATUS_STALLED,
}
_STATUS_FROM_PROTO: dict[int, OrchestrationStatus] = {
    int(value): status for status, value in _STATUS_TO_PROTO.items()
}


def string_value(value: str | None) -> wrappers_pb2.StringValue | None:
    """Wrap a payload in a ``StringValue``; ``None`` gives ``None`` (the field stays unset)."""
    return None if value is None else wrappers_pb2.StringValue(value=value)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def optional_string(message: Message, field: str) -> str | None:
    """The text of the ``StringValue`` field ``field`` of ``message``, or ``None`` if unset."""
    if not message.HasField(field):
        return None
    wrapper: wrappers_pb2.StringValue = getattr(message, field)
    return wrapper.value


def datetime_to_proto(value: datetime) -> timestamp_pb2.Timestamp:
    """Convert a datetime (UTC-aware, or naive meaning UTC) to a protobuf ``Timestamp``.

    ``INDEFINITE_FIRE_AT`` becomes the SDK's never-firing sentinel (nanosecond 999999999).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if value == INDEFINITE_FIRE_AT:
        return timestamp_pb2.Timestamp(seconds=_SENTINEL_SECONDS, nanos=_SENTINEL_NANOS)
    # (Timestamp.FromDatetime goes through a time tuple: several times slower)
    delta = value - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


def datetime_from_proto(value: timestamp_pb2.Timestamp) -> datetime:
    """Convert a protobuf ``Timestamp`` to a UTC-aware datetime (sub-microseconds are dropped).

    Raises:
        InvalidInputError: the timestamp is outside the range of ``datetime``.
    """
    try:
        return value.ToDatetime(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as exc:
        raise InvalidInputError(
            f"timestamp {value.seconds}s+{value.nanos}ns is out of range: {exc}"
        ) from exc


def status_to_proto(status: OrchestrationStatus) -> opb.OrchestrationStatus:
    """The protobuf ``ORCHESTRATION_STATUS_*`` value of a core status."""
    return _STATUS_TO_PROTO[status]


def status_from_proto(value: int) -> OrchestrationStatus:
    """The core status of a protobuf ``ORCHESTRATION_STATUS_*`` value.

    Raises:
        InvalidInputError: the value is not a known status.
    """
    try:
        return _STATUS_FROM_PROTO[value]
    except KeyError:
        raise InvalidInputError(f"unknown orchestration status {value}") from None


def failure_to_proto(failure: FailureDetails) -> opb.TaskFailureDetails:
    """Convert failure details to ``TaskFailureDetails`` (errorType, errorMessage, stackTrace)."""
    return opb.TaskFailureDetails(
        errorType=failure.error_type,
        errorMessage=failure.message,
        stackTrace=string_value(failure.stack_trace),
    )


def failure_from_proto(failure: opb.TaskFailureDetails) -> FailureDetails:
    """Convert ``TaskFailureDetails`` to failure details.

    ``innerFailure`` and ``isNonRetriable`` are not modelled by the core and are dropped.
    """
    return FailureDetails(
        message=failure.errorMessage,
        error_type=failure.errorType,
        stack_trace=failure.stackTrace.value if failure.HasField("stackTrace") else None,
    )


def trace_to_proto(trace: TraceContext, span_id: str = "") -> opb.TraceContext:
    """A ``TraceContext`` message: W3C ``traceParent`` and ``traceState`` (and the
    deprecated ``spanID``, if given)."""
    return opb.TraceContext(
        traceParent=trace.trace_parent, spanID=span_id, traceState=string_value(trace.trace_state)
    )


def trace_from_proto(message: opb.TraceContext, span_id: str = "") -> TraceContext | None:
    """The trace context of a ``TraceContext`` message whose ``traceParent`` is a valid W3C
    ``traceparent`` (anything else: None, as if untraced); ``span_id``: the run span's id, if
    the message comes with one (``ExecutionStartedEvent.workflowSpanID``)."""
    parent = message.traceParent
    if not valid_traceparent(parent):
        return None
    state = message.traceState.value if message.HasField("traceState") else ""
    valid_span = len(span_id) == 16 and all(c in "0123456789abcdef" for c in span_id)
    return TraceContext(parent, span_id if valid_span else "", state or None)
